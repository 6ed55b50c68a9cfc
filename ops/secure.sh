#!/usr/bin/env bash
# Security material for the secure stack (ops/stack up --secure): a throwaway CA, server
# certificates and passwords, all under $FLYWHEEL_STATE (see ops/lib.sh).
#
#   ops/secure.sh ensure   make what is missing or expires within a day (idempotent)
#   ops/secure.sh env      print the client settings that go with it (CA path, users, password
#                          files); ops/stack env prints them after the addresses
#
# Layout:
#   tls/ca.pem  tls/ca.key              the CA (10 days); clients trust ca.pem
#   tls/kafka.crt  tls/kafka.key        broker: SAN DNS:localhost, IP:127.0.0.1; serverAuth and
#   tls/kafka.keystore.pem              clientAuth (its controller listener is mutual TLS)
#   tls/postgres.crt  tls/postgres.key  PostgreSQL: same SAN
#   secrets/kafka-admin                 SCRAM-SHA-512 password of the broker's own user
#   secrets/kafka-client                SCRAM-SHA-512 password of user "flywheel"
#   secrets/pg-postgres                 scram-sha-256 password of the superuser
#   secrets/pg-client                   scram-sha-256 password of user "flywheel"
# Keys and secrets are 0600 in 0700 directories. Passwords never appear on a command line:
# they are read from these files (KAFKA_SASL_PASSWORD_FILE, DATABASE_PASSWORD_FILE).
set -euo pipefail

LOG_TAG=secure
# shellcheck source=ops/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CA_DAYS="${FLYWHEEL_TLS_DAYS:-10}"
RENEW_WITHIN_S=86400
SECRETS=(kafka-admin kafka-client pg-postgres pg-client)
SERVERS=(kafka postgres)

ensure_secrets() {
  local name
  (umask 077 && mkdir -p "$SECRETS_DIR")
  chmod 700 "$SECRETS_DIR"
  for name in "${SECRETS[@]}"; do
    [[ -s "$SECRETS_DIR/$name" ]] && continue
    # Hex only: the value is written into Java argument files and JAAS strings unquoted.
    (umask 077 && openssl rand -hex 24 >"$SECRETS_DIR/$name.tmp")
    mv "$SECRETS_DIR/$name.tmp" "$SECRETS_DIR/$name"
    log "new password in $SECRETS_DIR/$name"
  done
}

valid_for_a_day() { # valid_for_a_day CERT: exists and does not expire within RENEW_WITHIN_S
  [[ -s "$1" ]] && openssl x509 -in "$1" -noout -checkend "$RENEW_WITHIN_S" >/dev/null 2>&1
}

make_ca() {
  log "new throwaway CA in $TLS_DIR (valid $CA_DAYS days)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -days "$CA_DAYS" -subj "/CN=dspy-flywheel throwaway CA $(hostname)" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -keyout "$TLS_DIR/ca.key.tmp" -out "$TLS_DIR/ca.pem.tmp" 2>/dev/null
  chmod 600 "$TLS_DIR/ca.key.tmp"
  chmod 644 "$TLS_DIR/ca.pem.tmp"
  mv "$TLS_DIR/ca.key.tmp" "$TLS_DIR/ca.key"
  mv "$TLS_DIR/ca.pem.tmp" "$TLS_DIR/ca.pem"
}

make_server_cert() { # make_server_cert NAME: NAME.crt/NAME.key signed by the CA
  local name="$1" ext
  ext="$TLS_DIR/$name.ext"
  cat >"$ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
  (umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -subj "/CN=localhost/O=dspy-flywheel $name" -keyout "$TLS_DIR/$name.key.tmp" \
    -out "$TLS_DIR/$name.csr" 2>/dev/null)
  openssl x509 -req -in "$TLS_DIR/$name.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
    -CAcreateserial -CAserial "$TLS_DIR/ca.srl" -sha256 -days "$CA_DAYS" -extfile "$ext" \
    -out "$TLS_DIR/$name.crt.tmp" 2>/dev/null
  rm -f "$TLS_DIR/$name.csr" "$ext"
  mv "$TLS_DIR/$name.key.tmp" "$TLS_DIR/$name.key"
  mv "$TLS_DIR/$name.crt.tmp" "$TLS_DIR/$name.crt"
  log "new $name certificate (CN=localhost, SAN DNS:localhost, IP:127.0.0.1)"
}

ensure_certs() {
  local name renewed=0
  mkdir -p "$TLS_DIR"
  chmod 755 "$TLS_DIR"  # ca.pem is for every client; keys are 0600
  if ! valid_for_a_day "$TLS_DIR/ca.pem" || [[ ! -s "$TLS_DIR/ca.key" ]]; then
    make_ca
    rm -f "$TLS_DIR"/*.crt
  fi
  for name in "${SERVERS[@]}"; do
    if ! valid_for_a_day "$TLS_DIR/$name.crt" || [[ ! -s "$TLS_DIR/$name.key" ]] ||
      ! openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/$name.crt" >/dev/null 2>&1; then
      make_server_cert "$name"
      renewed=1
    fi
  done
  # Kafka reads key and chain from one PEM file (ssl.keystore.type=PEM).
  if ((renewed)) || [[ ! -s "$TLS_DIR/kafka.keystore.pem" ]]; then
    (umask 077 && cat "$TLS_DIR/kafka.key" "$TLS_DIR/kafka.crt" "$TLS_DIR/ca.pem" \
      >"$TLS_DIR/kafka.keystore.pem")
  fi
}

cmd_ensure() {
  need openssl openssl
  ensure_secrets
  ensure_certs
}

cmd_env() {
  [[ -s "$TLS_DIR/ca.pem" ]] || die "no CA in $TLS_DIR; run: ops/stack up --secure"
  cat <<EOF
export KAFKA_SECURITY_PROTOCOL=SASL_SSL
export KAFKA_SASL_MECHANISM=SCRAM-SHA-512
export KAFKA_SASL_USERNAME=$CLIENT_USER
export KAFKA_SASL_PASSWORD_FILE=$SECRETS_DIR/kafka-client
export KAFKA_SSL_CAFILE=$TLS_DIR/ca.pem
export DATABASE_SSLMODE=verify-full
export DATABASE_SSLROOTCERT=$TLS_DIR/ca.pem
export DATABASE_PASSWORD_FILE=$SECRETS_DIR/pg-client
EOF
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    ensure) take_lock secure && cmd_ensure ;;
    env) cmd_env ;;
    *) die "usage: $0 ensure|env" ;;
  esac
fi
