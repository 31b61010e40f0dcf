/* The campaign model: every property of a campaign is a hash of (id, seed)
 * and a salt, so the same campaign behaves the same in every run with the
 * same seed, in any order of requests, on any number of threads. Times are
 * offsets in SIM milliseconds after the campaign's birth (its first detail
 * request); the server turns them into wall-clock times with --time-scale.
 *
 * Pure functions: no clock, no globals, no locks. */
#include "sim.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Salts of the independent properties. */
enum {
  H_FINAL = 1,
  H_TYPE,
  H_SKIPMOD,
  H_LATER,
  H_LATER_START,
  H_PAUSES,
  H_SEND_DUR,
  H_STOP_AT,
  H_PAUSE_AT,
  H_PAUSE_DUR,
  H_TOTAL_SMALL,
  H_TOTAL,
  H_PHONES,
  H_PHONES_GAP,
  H_DECIMALS,
  H_UNIT,
  H_CURRENCY,
  H_SENDER,
  H_SHARE_OK,
  H_SHARE_READ,
  H_SHARE_NOTUSER,
  H_SHARE_UNDELIV,
  H_SHARE_FAILED,
  H_VARIANT = 100
};

#define CREATION_END_MS 3000
#define MODERATION_END_MS 8000

static const char *const status_names[] = {
    "creation", "moderation", "scheduled", "sending",
    "paused",   "stopped",    "done",      "spam"};

static const char *const counter_names[SIM_NCOUNTERS] = {
    "delivered",   "read",   "sent",    "scheduled",      "moderation",
    "undelivered", "failed", "expired", "not_viber_user", "not_rcs_user"};

static const char *const type_names[] = {"sms", "viber", "rcs"};

const char *sim_status_name(sim_status_t st) {
  return (unsigned)st < sizeof(status_names) / sizeof(status_names[0])
             ? status_names[st]
             : "unknown";
}

int sim_status_text_terminal(const char *s) {
  return !strcasecmp(s, "done") || !strcasecmp(s, "stopped") ||
         !strcasecmp(s, "spam");
}

/* ---- plan ---------------------------------------------------------------- */

static uint64_t hv(uint64_t id, uint64_t seed, int salt) {
  return sim_hash3(id, seed, (uint64_t)salt);
}

/* Percent draw: true with probability pct/100. */
static int chance(uint64_t id, uint64_t seed, int salt, int pct) {
  return (int)(hv(id, seed, salt) % 100) < pct;
}

/* Which counters a type emits (always, zeros included, so that the set of
 * keys does not depend on the moment or the variant). */
static int counter_emitted(sim_type_t type, int c) {
  switch (c) {
  case SIM_C_READ:
    return type != SIM_TYPE_SMS;
  case SIM_C_NOT_VIBER_USER:
    return type == SIM_TYPE_VIBER;
  case SIM_C_NOT_RCS_USER:
    return type == SIM_TYPE_RCS;
  default:
    return 1;
  }
}

static void make_splits(uint64_t id, uint64_t seed, sim_plan_t *p) {
  int chat = p->type != SIM_TYPE_SMS;
  p->split_ok = (int)sim_range(hv(id, seed, H_SHARE_OK), 700, 980);
  p->split_read =
      chat ? (int)sim_range(hv(id, seed, H_SHARE_READ), 300, 700) : 0;
  p->split_notuser =
      chat ? (int)sim_range(hv(id, seed, H_SHARE_NOTUSER), 0, 500) : 0;
  p->split_undelivered =
      (int)sim_range(hv(id, seed, H_SHARE_UNDELIV), 400, 700);
  p->split_failed = (int)sim_range(hv(id, seed, H_SHARE_FAILED), 400, 800);
}

/* The two lifecycle mixes (docs/simulator.md, "Lifecycle"). Shares are in
 * percent; durations in sim ms. `log_uniform` marks ranges drawn
 * log-uniformly (as many 2-4 min sends as 2-4 h ones), the others are
 * uniform. The default mix must stay as it was, draw for draw: the e2e tests
 * depend on its exact lifecycles. */
typedef struct {
  int done_pct, stopped_pct; /* spam is the rest */
  int later_pct, pause_pct;  /* of non-spam campaigns */
  int log_uniform;
  int64_t later_min, later_max; /* planned start after birth */
  int64_t send_min, send_max;   /* time to send everything */
  int64_t pause_min, pause_max; /* length of the pause */
} mix_params_t;

static const mix_params_t mixes[] = {
    [SIM_MIX_DEFAULT] = {78, 15, 20, 10, 0, 300000, 1800000, 60000, 1200000,
                         60000, 600000},
    [SIM_MIX_REALISTIC] = {80, 14, 35, 15, 1, 600000, 28800000, 120000,
                           14400000, 300000, 3600000},
};

int sim_mix_parse(const char *s, sim_mix_t *mix) {
  if (!strcmp(s, "default"))
    *mix = SIM_MIX_DEFAULT;
  else if (!strcmp(s, "realistic"))
    *mix = SIM_MIX_REALISTIC;
  else
    return -1;
  return 0;
}

const char *sim_mix_name(sim_mix_t mix) {
  return mix == SIM_MIX_REALISTIC ? "realistic" : "default";
}

/* A duration in [lo, hi] from a hash: uniform, or log-uniform (the log of
 * the duration is uniform) for the realistic mix. */
static int64_t draw_ms(const mix_params_t *m, uint64_t h, int64_t lo,
                       int64_t hi) {
  double x;
  if (!m->log_uniform)
    return sim_range(h, lo, hi);
  x = exp(log((double)lo) + sim_unit(h) * (log((double)hi) - log((double)lo)));
  return x < (double)lo ? lo : x > (double)hi ? hi : llround(x);
}

void sim_plan_make(uint64_t id, uint64_t seed, sim_mix_t mix, sim_plan_t *p) {
  static const char *const currencies[] = {"EUR", "USD", "UAH"};
  static const char *const senders[] = {"BSG", "BSGWorld", "InfoSMS", "Shop24",
                                        "MyBank"};
  const mix_params_t *m =
      &mixes[mix == SIM_MIX_REALISTIC ? SIM_MIX_REALISTIC : SIM_MIX_DEFAULT];
  uint64_t r;
  int64_t pow10 = 1;

  memset(p, 0, sizeof(*p));
  p->id = id;

  /* Outcome: default 78 % done, 15 % stopped, 7 % spam; realistic 80/14/6. */
  r = hv(id, seed, H_FINAL) % 100;
  p->final = (int)r < m->done_pct                    ? SIM_ST_DONE
             : (int)r < m->done_pct + m->stopped_pct ? SIM_ST_STOPPED
                                                     : SIM_ST_SPAM;
  r = hv(id, seed, H_TYPE) % 100;
  p->type = r < 60 ? SIM_TYPE_SMS : r < 85 ? SIM_TYPE_VIBER : SIM_TYPE_RCS;

  /* Spam is found in moderation, so spam never skips it, never waits for a
   * later start and never pauses. */
  if (p->final != SIM_ST_SPAM) {
    p->skip_moderation = chance(id, seed, H_SKIPMOD, 30);
    p->later = chance(id, seed, H_LATER, m->later_pct);
    p->pauses = chance(id, seed, H_PAUSES, m->pause_pct);
  }
  p->moderation_end = p->skip_moderation ? CREATION_END_MS : MODERATION_END_MS;
  if (p->later) {
    p->planned_start =
        draw_ms(m, hv(id, seed, H_LATER_START), m->later_min, m->later_max);
    p->send_start = p->planned_start;
  } else {
    p->planned_start = 0;
    p->send_start = p->moderation_end;
  }
  p->send_duration =
      draw_ms(m, hv(id, seed, H_SEND_DUR), m->send_min, m->send_max);
  if (p->final == SIM_ST_STOPPED)
    p->active =
        p->send_duration * sim_range(hv(id, seed, H_STOP_AT), 20, 90) / 100;
  else
    p->active = p->send_duration;
  if (p->pauses) {
    p->pause_at = p->active * sim_range(hv(id, seed, H_PAUSE_AT), 30, 70) / 100;
    p->pause_duration =
        draw_ms(m, hv(id, seed, H_PAUSE_DUR), m->pause_min, m->pause_max);
  }
  if (p->final == SIM_ST_SPAM)
    p->terminal_at = p->moderation_end;
  else
    p->terminal_at = p->send_start + p->active + p->pause_duration;

  if (chance(id, seed, H_TOTAL_SMALL, 10))
    p->total_messages = sim_range(hv(id, seed, H_TOTAL), 1, 20);
  else
    p->total_messages = sim_range(hv(id, seed, H_TOTAL), 1, 5000);
  p->total_phones = p->total_messages;
  if (chance(id, seed, H_PHONES, 30))
    p->total_phones -=
        sim_range(hv(id, seed, H_PHONES_GAP), 0, p->total_messages / 20);

  /* A unit price of 2..7 decimals, between 10^-d and 0.1 (or 0.10 for two
   * decimals): "0.0325". Totals stay exact integers of 10^-d units. */
  p->price_decimals = (int)sim_range(hv(id, seed, H_DECIMALS), 2, 7);
  for (int i = 1; i < p->price_decimals; i++)
    pow10 *= 10;
  p->unit_price =
      sim_range(hv(id, seed, H_UNIT), 1, p->price_decimals == 2 ? 10 : pow10);
  p->currency = currencies[hv(id, seed, H_CURRENCY) % 3];
  p->sender = senders[hv(id, seed, H_SENDER) % 5];
  make_splits(id, seed, p);
}

static json_t *ms_or_null(int64_t ms, int valid) {
  return valid ? json_integer(ms) : json_null();
}

json_t *sim_plan_json(const sim_plan_t *p, double scale) {
  json_t *phases = json_pack(
      "{s:I s:o s:o s:o s:o s:o s:I}", "creation", (json_int_t)0, "moderation",
      ms_or_null(CREATION_END_MS, !p->skip_moderation), "scheduled",
      ms_or_null(p->moderation_end, p->later), "sending",
      ms_or_null(p->send_start, p->final != SIM_ST_SPAM), "paused",
      ms_or_null(p->send_start + p->pause_at, p->pauses), "resumed",
      ms_or_null(p->send_start + p->pause_at + p->pause_duration, p->pauses),
      "terminal", (json_int_t)p->terminal_at);
  char unit[32], price[32];
  int64_t div = 1;
  for (int i = 0; i < p->price_decimals; i++)
    div *= 10;
  snprintf(unit, sizeof(unit), "%lld.%0*lld", (long long)(p->unit_price / div),
           p->price_decimals, (long long)(p->unit_price % div));
  sim_price_text(p, price, sizeof(price));
  return json_pack(
      "{s:s s:s s:b s:b s:b s:o s:I s:I s:I s:I s:I s:s s:s s:s}",
      "final_status", sim_status_name(p->final), "type", type_names[p->type],
      "skip_moderation", p->skip_moderation, "scheduled_later", p->later,
      "pauses", p->pauses, "phases_sim_ms", phases, "send_duration_sim_ms",
      (json_int_t)p->send_duration, "terminal_after_real_ms",
      (json_int_t)llround((double)p->terminal_at / scale), "total_messages",
      (json_int_t)p->total_messages, "total_phones",
      (json_int_t)p->total_phones, "price_decimals",
      (json_int_t)p->price_decimals, "unit_price", unit, "total_price", price,
      "currency", p->currency);
}

/* ---- view ---------------------------------------------------------------- */

/* Splits `resolved` messages along the plan's tree of binary splits. Each
 * part is a floor of a non-negative product and its sibling the rest, so
 * all parts sum to `resolved` and none ever shrinks as `resolved` grows. */
static void distribute(const sim_plan_t *p, int64_t resolved, int64_t *c) {
  int64_t ok = resolved * p->split_ok / 1000, bad = resolved - ok;
  int64_t read = ok * p->split_read / 1000;
  int64_t notuser = bad * p->split_notuser / 1000, rest = bad - notuser;
  int64_t undelivered = rest * p->split_undelivered / 1000;
  int64_t rest2 = rest - undelivered;
  int64_t failed = rest2 * p->split_failed / 1000;

  c[SIM_C_DELIVERED] += ok - read;
  c[SIM_C_READ] += read;
  c[p->type == SIM_TYPE_RCS ? SIM_C_NOT_RCS_USER : SIM_C_NOT_VIBER_USER] +=
      notuser;
  c[SIM_C_UNDELIVERED] += undelivered;
  c[SIM_C_FAILED] += failed;
  c[SIM_C_EXPIRED] += rest2 - failed;
}

static int64_t real_at(int64_t born_ms, int64_t sim_ms, double scale) {
  return born_ms + llround((double)sim_ms / scale);
}

void sim_view_at(const sim_plan_t *p, int64_t born_ms, int64_t at_ms,
                 double scale, sim_view_t *v) {
  int64_t t = llround((double)(at_ms - born_ms) * scale);
  int64_t n = p->total_messages;
  sim_status_t st;

  memset(v, 0, sizeof(*v));
  if (t < 0)
    t = 0;
  v->created_ms = born_ms;
  v->started_ms = real_at(born_ms, p->planned_start, scale);
  v->actual_ms = -1;
  v->finished_ms = -1;

  if (t < CREATION_END_MS) {
    st = SIM_ST_CREATION;
    v->counters[SIM_C_SCHEDULED] = n;
  } else if (t < p->moderation_end) {
    st = SIM_ST_MODERATION;
    v->counters[SIM_C_MODERATION] = n;
  } else if (p->final == SIM_ST_SPAM) {
    /* Spam: nothing delivered, everything failed, never started. */
    st = SIM_ST_SPAM;
    v->counters[SIM_C_FAILED] = n;
    v->finished_ms = real_at(born_ms, p->terminal_at, scale);
  } else if (t < p->send_start) {
    st = SIM_ST_SCHEDULED;
    v->counters[SIM_C_SCHEDULED] = n;
  } else {
    int64_t e = t - p->send_start, dispatched, resolved;
    int paused = 0, terminal = 0;
    v->actual_ms = real_at(born_ms, p->send_start, scale);
    if (p->pauses && e >= p->pause_at) {
      if (e < p->pause_at + p->pause_duration) {
        paused = 1;
        e = p->pause_at;
      } else {
        e -= p->pause_duration;
      }
    }
    if (e >= p->active) {
      terminal = 1;
      e = p->active;
      v->finished_ms = real_at(born_ms, p->terminal_at, scale);
    }
    /* Messages leave the queue a little faster than they resolve, so that
     * "sent" (awaiting a delivery report) is non-zero while sending. */
    dispatched = n * e * 5 / (4 * p->send_duration);
    if (dispatched > n)
      dispatched = n;
    resolved = n * e / p->send_duration;
    if (terminal) {
      /* done resolves everything; stopped resolves what left the queue and
       * leaves the rest unsent ("scheduled"). */
      if (p->final == SIM_ST_DONE)
        dispatched = resolved = n;
      else
        resolved = dispatched;
      st = p->final;
    } else {
      st = paused ? SIM_ST_PAUSED : SIM_ST_SENDING;
    }
    v->counters[SIM_C_SCHEDULED] = n - dispatched;
    v->counters[SIM_C_SENT] = dispatched - resolved;
    distribute(p, resolved, v->counters);
  }
  snprintf(v->status, sizeof(v->status), "%s", sim_status_name(st));
  v->terminal = st == SIM_ST_DONE || st == SIM_ST_STOPPED || st == SIM_ST_SPAM;
}

void sim_view_force(sim_view_t *v, const char *status, int64_t forced_at_ms) {
  size_t i;
  for (i = 0; status[i] && i < sizeof(v->status) - 1; i++)
    v->status[i] = (char)tolower((unsigned char)status[i]);
  v->status[i] = '\0';
  v->terminal = sim_status_text_terminal(v->status);
  if (v->terminal && v->finished_ms < 0)
    v->finished_ms = forced_at_ms;
  else if (!v->terminal)
    v->finished_ms = -1;
}

/* ---- variants ------------------------------------------------------------ */

static const struct {
  const char *name;
  size_t offset;
  int value;
} variant_names[] = {
    {"id_string", offsetof(sim_variant_t, id_string), 1},
    {"stats_array", offsetof(sim_variant_t, stats_parts), 2},
    {"stats_array3", offsetof(sim_variant_t, stats_parts), 3},
    {"message_type", offsetof(sim_variant_t, type_key), 1},
    {"start_date", offsetof(sim_variant_t, start_key), 1},
    {"start_at", offsetof(sim_variant_t, start_key), 2},
    {"real_start_at", offsetof(sim_variant_t, actual_key), 1},
    {"creation_at", offsetof(sim_variant_t, created_key), 1},
    {"status_upper", offsetof(sim_variant_t, status_case), 1},
    {"status_capital", offsetof(sim_variant_t, status_case), 2},
    {"price_comma", offsetof(sim_variant_t, price_format), 1},
    {"price_number", offsetof(sim_variant_t, price_format), 2},
    {"totals_string", offsetof(sim_variant_t, totals_string), 1},
    {"iso_time", offsetof(sim_variant_t, iso_time), 1},
    {"name_null", offsetof(sim_variant_t, name_null), 1},
    {"alt_null", offsetof(sim_variant_t, alt), 1},
    {"alt_empty", offsetof(sim_variant_t, alt), 2},
    {"alt_object", offsetof(sim_variant_t, alt), 3},
};

const char *sim_variant_names(void) {
  return "id_string, stats_array, stats_array3, message_type, start_date, "
         "start_at, real_start_at, creation_at, status_upper, status_capital, "
         "price_comma, price_number, totals_string, iso_time, name_null, "
         "alt_null, alt_empty, alt_object";
}

int sim_variant_spec_parse(const char *s, sim_variant_spec_t *spec) {
  char buf[512], *tok, *save = NULL;
  memset(spec, 0, sizeof(*spec));
  if (!strcmp(s, "mixed")) {
    spec->mixed = 1;
    return 0;
  }
  if (!strcmp(s, "canonical"))
    return 0;
  if (strlen(s) >= sizeof(buf))
    return -1;
  snprintf(buf, sizeof(buf), "%s", s);
  for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    size_t i, n = sizeof(variant_names) / sizeof(variant_names[0]);
    while (*tok == ' ')
      tok++;
    for (i = 0; i < n; i++) {
      if (!strcmp(tok, variant_names[i].name)) {
        *(int *)((char *)&spec->fixed + variant_names[i].offset) =
            variant_names[i].value;
        break;
      }
    }
    if (i == n)
      return -1;
  }
  return 0;
}

void sim_variant_pick(const sim_variant_spec_t *spec, uint64_t id,
                      uint64_t seed, sim_variant_t *v) {
  uint64_t r;
  if (!spec->mixed) {
    *v = spec->fixed;
    return;
  }
  memset(v, 0, sizeof(*v));
  v->id_string = chance(id, seed, H_VARIANT + 0, 30);
  if (chance(id, seed, H_VARIANT + 1, 25))
    v->stats_parts = 2 + (int)(hv(id, seed, H_VARIANT + 2) % 2);
  v->type_key = chance(id, seed, H_VARIANT + 3, 50);
  v->start_key = (int)(hv(id, seed, H_VARIANT + 4) % 3);
  v->actual_key = chance(id, seed, H_VARIANT + 5, 50);
  v->created_key = chance(id, seed, H_VARIANT + 6, 50);
  r = hv(id, seed, H_VARIANT + 7) % 100;
  v->status_case = r < 60 ? 0 : r < 80 ? 1 : 2;
  v->price_format = (int)(hv(id, seed, H_VARIANT + 8) % 3);
  v->totals_string = chance(id, seed, H_VARIANT + 9, 25);
  v->iso_time = chance(id, seed, H_VARIANT + 10, 30);
  v->name_null = chance(id, seed, H_VARIANT + 11, 10);
  r = hv(id, seed, H_VARIANT + 12) % 100;
  v->alt = r < 40 ? 0 : r < 60 ? 1 : r < 80 ? 2 : 3;
}

json_t *sim_variant_json(const sim_variant_t *v) {
  static const char *const start_keys[] = {"started_at", "start_date",
                                           "start_at"};
  static const char *const cases[] = {"lower", "upper", "capital"};
  static const char *const prices[] = {"dot_string", "comma_string", "number"};
  static const char *const alts[] = {"absent", "null", "empty_array", "object"};
  return json_pack("{s:b s:i s:s s:s s:s s:s s:s s:s s:b s:s s:b s:s}",
                   "id_string", v->id_string, "stats_parts", v->stats_parts,
                   "type_key", v->type_key ? "message_type" : "type",
                   "start_key", start_keys[v->start_key], "actual_key",
                   v->actual_key ? "real_start_at" : "actual_start_at",
                   "created_key", v->created_key ? "creation_at" : "created_at",
                   "status_case", cases[v->status_case], "price_format",
                   prices[v->price_format], "totals_string", v->totals_string,
                   "time_format", v->iso_time ? "iso_utc" : "local",
                   "name_null", v->name_null, "alternative_channels",
                   alts[v->alt]);
}

/* ---- detail and canonical JSON ------------------------------------------- */

void sim_price_text(const sim_plan_t *p, char *buf, size_t len) {
  int64_t div = 1, units = p->total_messages * p->unit_price;
  /* The plan keeps 2..7 decimals; the clamp also tells the compiler that
   * the fraction fits its buffer. */
  int d = p->price_decimals < 0 ? 0 : p->price_decimals > 9 ? 9
                                                            : p->price_decimals;
  char frac[24];
  for (int i = 0; i < d; i++)
    div *= 10;
  snprintf(frac, sizeof(frac), "%0*lld", d, (long long)(units % div));
  while (d > 0 && frac[d - 1] == '0')
    frac[--d] = '\0';
  if (d > 0)
    snprintf(buf, len, "%lld.%s", (long long)(units / div), frac);
  else
    snprintf(buf, len, "%lld", (long long)(units / div));
}

/* A served timestamp: whole seconds as BSG serves them, or with milliseconds
 * (".123") when `msp` is set, for high time scales, where a real second is
 * many sim seconds (at scale 1000, 1 ms real is 1 sim second). */
static json_t *time_json_p(int64_t ms, int iso, int32_t tz, int msp) {
  char buf[48];
  size_t n;
  if (ms < 0)
    return json_null();
  if (iso)
    sim_time_rfc3339(ms, buf, sizeof(buf));
  else
    sim_time_local(ms, tz, buf, sizeof(buf));
  if (msp) {
    n = strlen(buf);
    if (iso && n > 0 && buf[n - 1] == 'Z')
      n--;
    snprintf(buf + n, sizeof(buf) - n, ".%03d%s",
             (int)(((ms % 1000) + 1000) % 1000), iso ? "Z" : "");
  }
  return json_string(buf);
}

static json_t *time_json(int64_t ms, int iso, int32_t tz) {
  return time_json_p(ms, iso, tz, 0);
}

static json_t *stats_object(const sim_plan_t *p, const sim_view_t *v, int part,
                            int parts) {
  json_t *o = json_object();
  for (int i = 0; o && i < SIM_NCOUNTERS; i++) {
    int64_t x = v->counters[i];
    if (!counter_emitted(p->type, i))
      continue;
    if (parts > 1)
      x = x / parts + (part < x % parts ? 1 : 0);
    json_object_set_new(o, counter_names[i], json_integer(x));
  }
  return o;
}

static json_t *alt_json(const sim_plan_t *p, int alt) {
  switch (alt) {
  case 1:
    return json_null();
  case 2:
    return json_array();
  default:
    return json_pack("{s:{s:s s:b}}", "viber", "sender", p->sender, "fallback",
                     1);
  }
}

static json_t *status_json(const char *status, int style) {
  char buf[40];
  size_t i;
  for (i = 0; status[i] && i < sizeof(buf) - 1; i++) {
    unsigned char c = (unsigned char)status[i];
    buf[i] = (char)(style == 1 || (style == 2 && i == 0) ? toupper(c) : c);
  }
  buf[i] = '\0';
  return json_string(buf);
}

static json_t *price_json(const sim_plan_t *p, int format) {
  char buf[32], *dot;
  sim_price_text(p, buf, sizeof(buf));
  dot = strchr(buf, '.');
  if (format == 1 && dot) {
    *dot = ',';
  } else if (format == 2) {
    /* A JSON number only when it survives a binary double and the worker's
     * 15-significant-digit printing: at most two decimals. */
    if (!dot)
      return json_integer(strtoll(buf, NULL, 10));
    if (strlen(dot + 1) <= 2)
      return json_real(strtod(buf, NULL));
  }
  return json_string(buf);
}

static json_t *total_json(int64_t n, int as_string) {
  char buf[32];
  if (!as_string)
    return json_integer(n);
  snprintf(buf, sizeof(buf), "%lld", (long long)n);
  return json_string(buf);
}

json_t *sim_detail_json(const sim_plan_t *p, const sim_variant_t *var,
                        const sim_view_t *v, int32_t tz_offset_s, int ms_time) {
  static const char *const start_keys[] = {"started_at", "start_date",
                                           "start_at"};
  char name[48], idtext[24];
  json_t *d = json_object(), *stats;
  int fail = 0;

  if (!d)
    return NULL;
  snprintf(name, sizeof(name), "Campaign %llu", (unsigned long long)p->id);
  snprintf(idtext, sizeof(idtext), "%llu", (unsigned long long)p->id);
  fail |= json_object_set_new(d, "id",
                              var->id_string ? json_string(idtext)
                                             : json_integer((json_int_t)p->id));
  fail |= json_object_set_new(d, "name",
                              var->name_null ? json_null() : json_string(name));
  fail |= json_object_set_new(d, "sender", json_string(p->sender));
  fail |= json_object_set_new(d, var->type_key ? "message_type" : "type",
                              json_string(type_names[p->type]));
  fail |= json_object_set_new(d, "status",
                              status_json(v->status, var->status_case));
  fail |= json_object_set_new(
      d, var->created_key ? "creation_at" : "created_at",
      time_json_p(v->created_ms, var->iso_time, tz_offset_s, ms_time));
  fail |= json_object_set_new(
      d, start_keys[var->start_key],
      time_json_p(v->started_ms, var->iso_time, tz_offset_s, ms_time));
  fail |= json_object_set_new(
      d, var->actual_key ? "real_start_at" : "actual_start_at",
      time_json_p(v->actual_ms, var->iso_time, tz_offset_s, ms_time));
  fail |= json_object_set_new(
      d, "finished_at",
      time_json_p(v->finished_ms, var->iso_time, tz_offset_s, ms_time));
  if (var->stats_parts > 1) {
    stats = json_array();
    for (int i = 0; stats && i < var->stats_parts; i++)
      json_array_append_new(stats, stats_object(p, v, i, var->stats_parts));
  } else {
    stats = stats_object(p, v, 0, 1);
  }
  fail |= json_object_set_new(d, "statistics", stats);
  fail |= json_object_set_new(
      d, "total_messages", total_json(p->total_messages, var->totals_string));
  fail |= json_object_set_new(d, "total_phones",
                              total_json(p->total_phones, var->totals_string));
  fail |=
      json_object_set_new(d, "total_price", price_json(p, var->price_format));
  fail |= json_object_set_new(d, "currency", json_string(p->currency));
  if (var->alt)
    fail |=
        json_object_set_new(d, "alternative_channels", alt_json(p, var->alt));
  if (fail) {
    json_decref(d);
    return NULL;
  }
  return d;
}

json_t *sim_canonical_json(const sim_plan_t *p, const sim_variant_t *var,
                           const sim_view_t *v) {
  char name[48], price[32];
  json_t *c;

  snprintf(name, sizeof(name), "Campaign %llu", (unsigned long long)p->id);
  sim_price_text(p, price, sizeof(price));
  c = json_pack("{s:o s:s s:s s:s s:o s:o s:o s:o s:o s:I s:I s:s s:s}", "name",
                var->name_null ? json_null() : json_string(name), "sender",
                p->sender, "type", type_names[p->type], "status", v->status,
                "started_at", time_json(v->started_ms, 1, 0), "actual_start_at",
                time_json(v->actual_ms, 1, 0), "created_at",
                time_json(v->created_ms, 1, 0), "finished_at",
                time_json(v->finished_ms, 1, 0), "statistics",
                stats_object(p, v, 0, 1), "total_messages",
                (json_int_t)p->total_messages, "total_phones",
                (json_int_t)p->total_phones, "total_price", price, "currency",
                p->currency);
  if (c && var->alt)
    json_object_set_new(c, "alternative_channels", alt_json(p, var->alt));
  return c;
}

/* Always the canonical form: the list is not where the detail's variants
 * are exercised, and BSG's spec names its keys (message_type, start_at,
 * real_start_at). */
json_t *sim_list_item_json(const sim_plan_t *p, const sim_view_t *v,
                           int64_t delivered, int64_t sent, int32_t tz_offset_s,
                           int ms_time) {
  char name[48];
  snprintf(name, sizeof(name), "Campaign %llu", (unsigned long long)p->id);
  return json_pack(
      "{s:I s:s s:s s:s s:s s:o s:o s:o s:o s:{s:I s:I} s:n s:s}", "id",
      (json_int_t)p->id, "name", name, "sender", p->sender, "status", v->status,
      "message_type", type_names[p->type], "start_at",
      time_json_p(v->started_ms, 0, tz_offset_s, ms_time), "real_start_at",
      time_json_p(v->actual_ms, 0, tz_offset_s, ms_time), "finished_at",
      time_json_p(v->finished_ms, 0, tz_offset_s, ms_time), "created_at",
      time_json_p(v->created_ms, 0, tz_offset_s, ms_time), "statistics",
      "delivered", (json_int_t)delivered, "sent", (json_int_t)sent,
      "calculated_price", "currency", p->currency);
}
