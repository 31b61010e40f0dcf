#!/usr/bin/env bash
# Make the certificates of the test broker's TLS listeners with openssl: a
# CA, broker certificates signed by it, a client certificate (mTLS), and a
# second CA that signed nothing the broker uses (for "unknown CA" tests).
# The HTTPS tests' TLS server (tests/integration/tlsfront.py) uses the same
# files, and an expired server certificate (for "expired certificate" tests).
# Everything is PEM; keys are EC P-256 (fast to make), PKCS#8.
#
# Usage: scripts/kafka-pki.sh DIR [CLIENT_KEY_PASSWORD]
# Writes into DIR (created if missing; existing files are replaced):
#   ca.pem             the test CA's certificate (the truststore of both sides)
#   broker.pem         the broker's key + certificate + CA chain (a Kafka PEM
#                      keystore), subject alt names IP:127.0.0.1, DNS:localhost
#   badname.pem        the same for a certificate naming kafka.wrong.example
#                      only (hostname-mismatch tests connect to 127.0.0.1)
#   expired.pem        the same as broker.pem (same names, same CA) for a
#                      certificate that has expired: valid from 3 days ago
#                      to 1 day ago
#   client.crt         the client certificate (CN=bsg-report-worker), signed
#                      by the CA
#   client.key         its key; encrypted (AES-256) with CLIENT_KEY_PASSWORD
#                      when one is given, as librdkafka's ssl.key.password
#                      reads it
#   other-ca.pem       a CA that signed nothing of the above
# The others are valid for 2 days from now: made fresh by each test run.
# Needs the `openssl` CLI (Debian's openssl package; scripts/install-deps.sh
# installs it) and GNU date.
set -euo pipefail

dir="${1:?usage: kafka-pki.sh DIR [CLIENT_KEY_PASSWORD]}"
client_pass="${2:-}"
command -v openssl >/dev/null 2>&1 || {
    echo "kafka-pki.sh: 'openssl' not found; run scripts/install-deps.sh" >&2
    exit 1
}
mkdir -p "$dir"
cd "$dir"
tmp="$(mktemp -d pki.tmp.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
days=2

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME CN: a self-signed CA certificate NAME.pem with its key in $tmp.
ca() {
    key "$tmp/$1.key"
    openssl req -x509 -new -key "$tmp/$1.key" -sha256 -days "$days" \
        -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.pem"
}

# leaf NAME CN EXT: a key and a certificate signed by the test CA, with the
# extensions EXT (an openssl config section body).
leaf() {
    key "$tmp/$1.key"
    openssl req -new -key "$tmp/$1.key" -subj "/CN=$2" -out "$tmp/$1.csr"
    printf '%s\n' "$3" >"$tmp/$1.ext"
    openssl x509 -req -in "$tmp/$1.csr" -CA ca.pem -CAkey "$tmp/ca.key" \
        -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -sha256 \
        -extfile "$tmp/$1.ext" -out "$tmp/$1.crt" 2>/dev/null
}

ca ca "brw test CA"
ca other-ca "brw other CA"

server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth'

# Kafka's PEM keystore: the private key (PKCS#8, unencrypted: no
# ssl.key.password on the broker), then the certificate chain.
leaf broker "127.0.0.1" "$server_ext
subjectAltName=IP:127.0.0.1,DNS:localhost"
cat "$tmp/broker.key" "$tmp/broker.crt" ca.pem >broker.pem

leaf badname "kafka.wrong.example" "$server_ext
subjectAltName=DNS:kafka.wrong.example"
cat "$tmp/badname.key" "$tmp/badname.crt" ca.pem >badname.pem

# An expired server certificate. `openssl x509 -req` in OpenSSL 3.0 starts
# a certificate now (-not_before/-not_after came in 3.4); `openssl ca` takes
# any -startdate/-enddate, with a throwaway CA database in $tmp.
key "$tmp/expired.key"
openssl req -new -key "$tmp/expired.key" -subj "/CN=127.0.0.1" -out "$tmp/expired.csr"
printf '%s\n' "$server_ext" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$tmp/expired.ext"
: >"$tmp/index.txt"
printf '%s\n' "[ca]" "default_ca = test" "[test]" "database = $tmp/index.txt" \
    "new_certs_dir = $tmp" "serial = $tmp/ca.srl" "default_md = sha256" \
    "policy = any" "unique_subject = no" "[any]" "commonName = supplied" \
    >"$tmp/ca.cnf"
openssl ca -batch -config "$tmp/ca.cnf" -cert ca.pem -keyfile "$tmp/ca.key" \
    -rand_serial -notext -extfile "$tmp/expired.ext" \
    -startdate "$(date -u -d '3 days ago' +%Y%m%d%H%M%SZ)" \
    -enddate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" \
    -in "$tmp/expired.csr" -out "$tmp/expired.crt" 2>/dev/null
cat "$tmp/expired.key" "$tmp/expired.crt" ca.pem >expired.pem

leaf client "bsg-report-worker" 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
cp "$tmp/client.crt" client.crt
if [[ -n "$client_pass" ]]; then
    openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$tmp/client.key" \
        -passout "pass:$client_pass" -out client.key
else
    cp "$tmp/client.key" client.key
fi
chmod 600 client.key broker.pem badname.pem expired.pem
