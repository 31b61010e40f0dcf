/* bsg-api-sim: a deterministic simulator of the BSG One API (SPEC §8).
 *
 * Modules, each a .c file in src/sim/:
 *   sim_util.c   hashing, durations, rates, zones, time text, base64url
 *   sim_model.c  a campaign's plan and lifecycle from (id, seed), its view at
 *                a moment, the detail JSON in a variant, the canonical truth
 *   sim_map.c    campaign state: an open-addressing hash map keyed by id
 *   sim_auth.c   bearer tokens (JWT-shaped, signed with a seed-derived key)
 *   sim_list.c   GET /api/campaigns: its query, filter windows, sort order
 *   sim_http.c   the HTTP server (libmicrohttpd), routing, faults, stats
 *   sim_main.c   command line, signals, start and stop
 *
 * The model is pure (no clock, no locks): given the same id, seed, birth
 * time and moment it always yields the same answer. All mutable state lives
 * in sim_http.c behind one mutex.
 */
#ifndef BRW_SIM_H
#define BRW_SIM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* ---- util --------------------------------------------------------------- */

/* splitmix64's finaliser: a fast, well-mixed 64-bit permutation. */
uint64_t sim_mix64(uint64_t x);
/* A hash of (a, b, salt); different salts give independent values. */
uint64_t sim_hash3(uint64_t a, uint64_t b, uint64_t salt);
/* A uniform double in [0, 1) from a hash. */
double sim_unit(uint64_t h);
/* A uniform integer in [lo, hi] from a hash (hi >= lo). */
int64_t sim_range(uint64_t h, int64_t lo, int64_t hi);

/* Wall clock, milliseconds since the epoch. */
int64_t sim_now_ms(void);

/* "250ms", "2s", "1.5m", "1h", "1d"; "0" alone is allowed. Returns 0 or -1. */
int sim_duration_parse(const char *s, int64_t *ms);
/* A number in [0, 1]. Returns 0 or -1. */
int sim_rate_parse(const char *s, double *rate);
/* "UTC", "Z", "+HH:MM", "-HH:MM", "+HHMM". Returns 0 or -1. */
int sim_tz_parse(const char *s, int32_t *offset_s);

/* The zone as "UTC" or "+HH:MM" / "-HH:MM" (what sim_tz_parse reads). buf
 * >= 8. */
void sim_tz_text(int32_t offset_s, char *buf, size_t len);
/* A date-time of a query: "yyyy-mm-dd hh:mm:ss" or "yyyy-mm-dd" (midnight),
 * both in the zone `zone_s` east of UTC, or RFC 3339 ("T" or a space, an
 * optional fraction of which milliseconds are kept, "Z" or "+hh:mm", whose
 * zone then wins). Returns 0 with epoch ms in *ms, or -1. */
int sim_time_parse(const char *s, int32_t zone_s, int64_t *ms);

/* "2026-11-27T10:00:00Z" for epoch ms (floored to the second). buf >= 32. */
void sim_time_rfc3339(int64_t ms, char *buf, size_t len);
/* "2026-11-27 13:00:00" in the zone `tz_offset_s` east of UTC. buf >= 32. */
void sim_time_local(int64_t ms, int32_t tz_offset_s, char *buf, size_t len);
/* "Fri, 27 Nov 2026 10:00:00 GMT" (an HTTP date). buf >= 40. */
void sim_time_http(int64_t ms, char *buf, size_t len);

/* base64url without padding. Writes a NUL-terminated text into out, which
 * needs 4 * ceil(n / 3) + 1 bytes. Returns its length. */
size_t sim_b64url_encode(const void *in, size_t n, char *out);
/* Decodes n characters of base64url (padding optional) into out (cap bytes).
 * Returns the decoded length, or -1 for invalid input or a short buffer. */
long sim_b64url_decode(const char *in, size_t n, unsigned char *out,
                       size_t cap);

/* ---- model -------------------------------------------------------------- */

typedef enum {
  SIM_ST_CREATION = 0,
  SIM_ST_MODERATION,
  SIM_ST_SCHEDULED,
  SIM_ST_SENDING,
  SIM_ST_PAUSED,
  SIM_ST_STOPPED,
  SIM_ST_DONE,
  SIM_ST_SPAM
} sim_status_t;

/* Lower-case name of a status, static. */
const char *sim_status_name(sim_status_t st);
/* done, stopped, spam (case-insensitive text). */
int sim_status_text_terminal(const char *s);

typedef enum { SIM_TYPE_SMS = 0, SIM_TYPE_VIBER, SIM_TYPE_RCS } sim_type_t;

/* Statistics counters, in the order they are emitted. */
typedef enum {
  SIM_C_DELIVERED = 0,
  SIM_C_READ,
  SIM_C_SENT,
  SIM_C_SCHEDULED,
  SIM_C_MODERATION,
  SIM_C_UNDELIVERED,
  SIM_C_FAILED,
  SIM_C_EXPIRED,
  SIM_C_NOT_VIBER_USER,
  SIM_C_NOT_RCS_USER,
  SIM_NCOUNTERS
} sim_counter_t;

/* How one campaign's detail is written (SPEC §2's variants). Every field's
 * zero value is the canonical form. */
typedef struct {
  int id_string;     /* "id": "123" instead of 123 */
  int stats_parts;   /* 0: object; 2 or 3: an array of that many objects */
  int type_key;      /* 0 "type", 1 "message_type" */
  int start_key;     /* 0 "started_at", 1 "start_date", 2 "start_at" */
  int actual_key;    /* 0 "actual_start_at", 1 "real_start_at" */
  int created_key;   /* 0 "created_at", 1 "creation_at" */
  int status_case;   /* 0 lower, 1 UPPER, 2 Capitalised */
  int price_format;  /* 0 "0.16", 1 "0,16", 2 JSON number when exact enough */
  int totals_string; /* total_messages / total_phones as decimal strings */
  int iso_time;      /* 0 "yyyy-mm-dd hh:mm:ss" in --timezone, 1 ISO UTC */
  int name_null;     /* "name": null */
  int alt;           /* alternative_channels: 0 absent, 1 null, 2 [], 3 {} */
} sim_variant_t;

/* The --variant setting: "mixed" picks a variant per campaign; otherwise
 * `fixed` serves every campaign. */
typedef struct {
  int mixed;
  sim_variant_t fixed;
} sim_variant_spec_t;

/* Parses "canonical", "mixed" or a comma-separated list of variant names
 * (see sim_variant_names). Returns 0 or -1. */
int sim_variant_spec_parse(const char *s, sim_variant_spec_t *spec);
/* The accepted names, for --help: a static, comma-separated text. */
const char *sim_variant_names(void);
/* The variant served for campaign `id`. */
void sim_variant_pick(const sim_variant_spec_t *spec, uint64_t id,
                      uint64_t seed, sim_variant_t *v);
/* The variant as a JSON object (new reference). */
json_t *sim_variant_json(const sim_variant_t *v);

/* A campaign's whole life, derived from (id, seed) only. Offsets are SIM
 * milliseconds after its birth. */
typedef struct {
  uint64_t id;
  sim_status_t final; /* SIM_ST_DONE, SIM_ST_STOPPED or SIM_ST_SPAM */
  sim_type_t type;
  int skip_moderation;
  int later; /* scheduled for later */
  int pauses;
  int64_t moderation_end; /* creation ends at 3 s; moderation (if any) here */
  int64_t planned_start;  /* started_at: 0 for "now", else the later start */
  int64_t send_start;     /* sending begins (actual_start_at) */
  int64_t send_duration;  /* time to send everything (progress = e / this) */
  int64_t active;         /* sending time until terminal (< duration: stop) */
  int64_t pause_at;       /* sending time at which the pause begins */
  int64_t pause_duration;
  int64_t terminal_at; /* the final status from here on */
  int64_t total_messages;
  int64_t total_phones;
  int price_decimals; /* unit price = unit_price / 10^price_decimals */
  int64_t unit_price;
  const char *currency;
  const char *sender;
  /* How resolved messages split, as a tree of binary splits in permille
   * (each part is floor(whole * permille / 1000), the other part the rest,
   * so every counter grows monotonically with the number resolved):
   * resolved -> ok | bad; ok -> read | delivered; bad -> not_*_user | rest;
   * rest -> undelivered | rest2; rest2 -> failed | expired. */
  int split_ok, split_read, split_notuser, split_undelivered, split_failed;
} sim_plan_t;

/* The lifecycle mix (--mix): how long campaigns wait, send and pause, and how
 * they end. SIM_MIX_DEFAULT is short lifecycles for tests; SIM_MIX_REALISTIC
 * has hours-ahead starts and sends of minutes to hours, for benchmarks of
 * the polling economy. Numbers in docs/simulator.md, "Lifecycle". */
typedef enum { SIM_MIX_DEFAULT = 0, SIM_MIX_REALISTIC } sim_mix_t;

/* "default" or "realistic". Returns 0 or -1. */
int sim_mix_parse(const char *s, sim_mix_t *mix);
/* The name of a mix, static. */
const char *sim_mix_name(sim_mix_t mix);

/* Fills *p with campaign `id`'s plan in `mix`: a pure function of its
 * arguments. */
void sim_plan_make(uint64_t id, uint64_t seed, sim_mix_t mix, sim_plan_t *p);
/* The plan as a JSON object (new reference): phases in sim seconds and the
 * real milliseconds they take at `scale`. */
json_t *sim_plan_json(const sim_plan_t *p, double scale);

/* What the detail says at one moment. Times are epoch ms, -1 for null. */
typedef struct {
  char status[33]; /* lower case; a forced status may be any text */
  int terminal;
  int64_t created_ms;
  int64_t started_ms;
  int64_t actual_ms;
  int64_t finished_ms;
  int64_t counters[SIM_NCOUNTERS];
} sim_view_t;

/* The campaign at real time `at_ms`, born at `born_ms`, with `scale` sim
 * seconds per real second. */
void sim_view_at(const sim_plan_t *p, int64_t born_ms, int64_t at_ms,
                 double scale, sim_view_t *v);
/* Overrides the status of a view taken at `forced_at_ms` (a forced hold):
 * a terminal forced status finishes then, a non-terminal one unfinishes. */
void sim_view_force(sim_view_t *v, const char *status, int64_t forced_at_ms);

/* The detail's "data" object as served in variant `var`, timestamps without
 * a zone written in `tz_offset_s`, in whole seconds or, with `ms_time`, with
 * milliseconds (--time-precision ms). New reference, NULL on ENOMEM. */
json_t *sim_detail_json(const sim_plan_t *p, const sim_variant_t *var,
                        const sim_view_t *v, int32_t tz_offset_s, int ms_time);
/* The same detail normalised as a correct worker must (SPEC §4 "campaign"):
 * identical for every variant except name null and alternative_channels,
 * which are served content and passed through. New reference. */
json_t *sim_canonical_json(const sim_plan_t *p, const sim_variant_t *var,
                           const sim_view_t *v);
/* total_messages * unit price as a decimal text with a dot, trailing zeros
 * removed ("40.105", "12"). buf >= 32. */
void sim_price_text(const sim_plan_t *p, char *buf, size_t len);

/* ---- campaign map ---------------------------------------------------------
 */

typedef struct {
  uint64_t id;          /* 0: an empty slot */
  int64_t born_ms;      /* 0: not born yet */
  int64_t requests;     /* detail requests for this id */
  int64_t forced_at_ms; /* when `forced` was set */
  char forced[33];      /* "" when the lifecycle runs freely */
  char counter[24];     /* a statistics counter served as counter_value
                           whatever the lifecycle says ("" for none) */
  int64_t counter_value;
  char owner[16]; /* the account (JWT sub) that may list it; "" for all */
} sim_campaign_t;

typedef struct {
  sim_campaign_t *slots;
  size_t cap; /* a power of two */
  size_t len;
} sim_map_t;

/* Returns 0 or -1 (ENOMEM). */
int sim_map_init(sim_map_t *m, size_t cap);
void sim_map_free(sim_map_t *m);
void sim_map_clear(sim_map_t *m);
/* Returns the entry, or NULL. The pointer is valid until the next insert. */
sim_campaign_t *sim_map_find(const sim_map_t *m, uint64_t id);
/* Finds or inserts (zeroed but for id) the entry for id (> 0). Returns NULL
 * only when growing fails. The pointer is valid until the next insert. */
sim_campaign_t *sim_map_upsert(sim_map_t *m, uint64_t id);

/* ---- auth -----------------------------------------------------------------
 */

/* Issues a bearer for `sub` valid until now + ttl. Returns a malloc'ed
 * NUL-terminated token that the caller frees, or NULL. */
char *sim_token_issue(uint64_t key, const char *sub, int64_t now_ms,
                      int64_t ttl_ms, uint64_t jti);

#define SIM_TOKEN_OK 0
#define SIM_TOKEN_INVALID (-1)
#define SIM_TOKEN_EXPIRED (-2)
/* Checks a bearer's signature and expiry; on success copies its `sub` into
 * sub (truncated to len - 1). */
int sim_token_verify(uint64_t key, const char *token, int64_t now_ms, char *sub,
                     size_t len);
/* What a login or refresh answers 200 with (--bearer-mode): a good bearer,
 * or one of the unusable kinds a misbehaving gateway or issuer produces, so
 * that clients can be tested against them. */
typedef enum {
  SIM_BEARER_NORMAL = 0,
  SIM_BEARER_EXPIRED,    /* signed, exp one hour in the past */
  SIM_BEARER_GARBAGE,    /* three segments, the payload is not JSON */
  SIM_BEARER_WHITESPACE, /* a good bearer followed by "\r\n" */
  SIM_BEARER_MISSING,    /* {"token_type":"Bearer"}: no bearer field */
  SIM_BEARER_NULL,       /* {"bearer":null} */
  SIM_BEARER_EMPTY,      /* {"bearer":""} */
  SIM_BEARER__COUNT
} sim_bearer_mode_t;

/* Parses a mode name; returns 0 or -1. */
int sim_bearer_mode_parse(const char *s, sim_bearer_mode_t *out);
/* The mode's name (static). */
const char *sim_bearer_mode_name(sim_bearer_mode_t m);
/* "normal, expired, ..." (static). */
const char *sim_bearer_mode_names(void);

/* The account name of an API key: "acct_" and 8 hex digits of its hash, so
 * that the key itself never appears anywhere. buf >= 16. */
void sim_account_of_key(const char *api_key, char *buf, size_t len);

/* ---- campaign list (GET /api/campaigns) -----------------------------------
 */

/* What the list endpoint does (--list-mode): serve it, or behave as a BSG
 * that lacks it (404), refuses it (403) or breaks it (200, not JSON). */
typedef enum {
  SIM_LIST_NORMAL = 0,
  SIM_LIST_404,
  SIM_LIST_403,
  SIM_LIST_GARBAGE,
  SIM_LIST__COUNT
} sim_list_mode_t;

/* "normal", "404", "403", "garbage"; "off" is read as "404". Returns 0 or
 * -1. */
int sim_list_mode_parse(const char *s, sim_list_mode_t *out);
/* The mode's name (static). */
const char *sim_list_mode_name(sim_list_mode_t m);

typedef enum {
  SIM_SORT_ID = 0,
  SIM_SORT_CREATED,
  SIM_SORT_STATUS
} sim_list_sort_t;

/* A list request's query, defaults filled in by sim_list_query_init. */
typedef struct {
  int64_t offset;
  int64_t limit; /* clamped into 30..500 */
  sim_list_sort_t sort;
  int desc;
  int has_from, has_to;
  int64_t from_ms, to_ms; /* inclusive */
  int type;               /* a sim_type_t, or -1 for any */
} sim_list_query_t;

void sim_list_query_init(sim_list_query_t *q);
/* Applies one query argument (key and value already percent-decoded;
 * unknown keys are ignored, an empty value is as if absent). Dates are read
 * in `zone_s` unless they carry a zone. Returns 0, or -1 with *message set
 * to the static text of a 422. */
int sim_list_query_arg(sim_list_query_t *q, const char *key, const char *value,
                       int32_t zone_s, const char **message);

/* One candidate of a listing: what sorting needs, and where it came from. */
typedef struct {
  uint64_t id;
  int64_t created_ms;
  const char *status;  /* borrowed; only read when sorting by status */
  uint64_t status_key; /* sim_list_status_key(status), set with it */
  size_t idx;          /* the caller's index of the campaign */
} sim_list_entry_t;

/* The first 8 bytes of a status as a number that orders as the text does,
 * so that sorting by status rarely needs strcmp. */
uint64_t sim_list_status_key(const char *status);

/* Sorts entries in the query's order: by id, by created_ms then id, or by
 * status text then id; `desc` reverses the whole order. */
void sim_list_sort(sim_list_entry_t *e, size_t n, const sim_list_query_t *q);

/* One campaign as a list item (BSG's CampaignSchema), timestamps as the
 * detail's zone-less ones. `delivered` and `sent` are the detail's
 * counters, passed in so that a set counter is listed too. New reference,
 * NULL on ENOMEM. */
json_t *sim_list_item_json(const sim_plan_t *p, const sim_view_t *v,
                           int64_t delivered, int64_t sent, int32_t tz_offset_s,
                           int ms_time);

/* ---- server ---------------------------------------------------------------
 */

typedef struct {
  double fail_5xx, fail_429, slow, malformed, truncated, html;
  int64_t retry_after_s;
  int64_t slow_ms;
  int64_t not_found_grace_ms;
  int64_t token_ttl_ms; /* not a fault, but tests change it at run time */
  sim_bearer_mode_t bearer_mode; /* what logins and refreshes answer */
  /* GET /api/campaigns: its own fault rates (drawn from its own sequence)
   * and the variants of behaviour the spec leaves open. */
  double list_fail_5xx, list_fail_429, list_malformed;
  sim_list_mode_t list_mode;
  int64_t list_lag_ms;      /* listed only this long after the birth */
  int list_filter_start;    /* filter[from]/[to] on start_at, not created */
  int32_t list_filter_tz_s; /* zone of zone-less filter dates */
} sim_faults_t;

typedef struct {
  const char *listen; /* "HOST:PORT" */
  uint64_t seed;
  double time_scale;
  const char **api_keys;
  size_t napi_keys;
  const char **reject_keys;
  size_t nreject_keys;
  int32_t tz_offset_s;
  sim_variant_spec_t variant;
  sim_mix_t mix;
  int ms_time; /* --time-precision ms: served timestamps carry milliseconds */
  sim_faults_t faults;
  int auth_faults; /* faults apply to the auth endpoints too (default 1) */
  int max_connections;
} sim_config_t;

typedef struct sim_server_s sim_server_t;

/* Binds and starts the server. `conf` is copied (its strings are borrowed
 * and must outlive the server). On success *out owns the server, which
 * sim_server_free stops and frees, and bound[] holds "HOST:PORT". Returns 0,
 * or -1 after logging why. */
int sim_server_start(const sim_config_t *conf, sim_server_t **out, char *bound,
                     size_t boundlen);
/* Stops the daemon (joining every connection thread) and frees everything. */
void sim_server_free(sim_server_t *srv);

/* Parses a faults object ({"fail_5xx": 0.2, "slow_ms": 500, ...}) on top of
 * *f. Returns 0, or -1 with a reason in err. */
int sim_faults_from_json(const json_t *obj, sim_faults_t *f, char *err,
                         size_t errlen);
json_t *sim_faults_json(const sim_faults_t *f);

#endif
