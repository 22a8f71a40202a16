# shellcheck shell=bash
# The secure broker of kafka.sh (KAFKA_SECURE=1): TLS material, SASL users and its
# server.properties. Sourced by kafka.sh, which sets $here, $data, $port,
# $controller_port and $partitions.
#
#   KAFKA_SASL_USERS   space-separated name=password pairs; each becomes a user of
#                      SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN (default
#                      "slawatch=slawatch-secret"). Users are written into the
#                      metadata log when the storage is formatted: to change them,
#                      `kafka.sh reset` first.
#   KAFKA_SSL_PORT     also listen with TLS and a required client certificate, no
#                      SASL, on this port (default: no such listener).
#   KAFKA_TLS_DAYS     validity of the certificates made (default 30).
#
# In $data/tls, made with openssl unless present and valid for another day:
#   ca.crt, ca.key          the CA (clients check the broker against ca.crt)
#   broker.crt, broker.key  the broker's certificate (127.0.0.1, localhost)
#   broker.pem              its key and chain: the PEM keystore of the broker
#   client.crt, client.key  a client certificate of the CA (CN=slawatch-client)
# $data/broker.password is the broker's own SCRAM password (made at format).

ssl_port=${KAFKA_SSL_PORT:-}
tls=$data/tls
_name_re='^[A-Za-z0-9._-]+$'

secure_tls() {
  if [ -f "$tls/broker.pem" ] && [ -f "$tls/client.crt" ] \
     && openssl x509 -checkend 86400 -noout -in "$tls/ca.crt" >/dev/null 2>&1 \
     && openssl x509 -checkend 86400 -noout -in "$tls/broker.crt" >/dev/null 2>&1; then
    return 0
  fi
  local days=${KAFKA_TLS_DAYS:-30}
  mkdir -p "$tls"
  chmod 700 "$tls"
  # each step chained: errexit does not hold inside a command followed by ||
  (
    umask 077 && cd "$tls" &&
    openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -keyout ca.key -out ca.crt \
      -subj "/CN=slawatch Kafka test CA" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
    leaf broker "/CN=127.0.0.1" \
      "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth" &&
    leaf client "/CN=slawatch-client" "extendedKeyUsage=clientAuth" &&
    cat broker.key broker.crt ca.crt > broker.pem &&
    rm -f ./*.csr ./*.ext ca.srl && chmod 644 ca.crt
  ) >"$data/logs/tls.log" 2>&1 || { cat "$data/logs/tls.log" >&2; return 1; }
  echo "kafka: TLS material made in $tls" >&2
}

# leaf NAME SUBJECT EXTENSIONS: NAME.key and NAME.crt signed by the CA (in the cwd)
leaf() {
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" "$3" > "$1.ext" &&
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" &&
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days "${KAFKA_TLS_DAYS:-30}" -extfile "$1.ext" -out "$1.crt"
}

# The users of this broker: from $data/sasl.users once formatted, else KAFKA_SASL_USERS.
secure_users() {
  local users
  if [ -f "$data/sasl.users" ]; then
    users=$(cat "$data/sasl.users")
    if [ -n "${KAFKA_SASL_USERS:-}" ] && [ "$KAFKA_SASL_USERS" != "$users" ]; then
      echo "kafka: KAFKA_SASL_USERS differs from the users made at format; 'reset' to change" >&2
    fi
  else
    users=${KAFKA_SASL_USERS:-slawatch=slawatch-secret}
  fi
  local pair
  for pair in $users; do
    if ! [[ ${pair%%=*} =~ $_name_re && ${pair#*=} =~ $_name_re && $pair == *=* ]]; then
      echo "kafka: KAFKA_SASL_USERS: '$pair' is not name=password ([A-Za-z0-9._-])" >&2
      return 1
    fi
    if [ "${pair%%=*}" = broker ]; then
      echo "kafka: KAFKA_SASL_USERS: 'broker' is the broker's own user" >&2
      return 1
    fi
  done
  echo "$users"
}

# secure_prepare: TLS material, the broker password and users, server.properties;
# sets format_args (the --add-scram arguments) for a storage not yet formatted.
secure_prepare() {
  secure_tls || return 1
  local users; users=$(secure_users) || return 1
  if [ ! -f "$data/log/meta.properties" ]; then
    (umask 077 && openssl rand -hex 24 > "$data/broker.password" &&
     echo "$users" > "$data/sasl.users") || return 1
  fi
  local password; password=$(cat "$data/broker.password") || return 1
  format_args=()
  local plain="" pair mechanism
  for pair in "broker=$password" $users; do
    for mechanism in SCRAM-SHA-512 SCRAM-SHA-256; do
      format_args+=(--add-scram "$mechanism=[name=${pair%%=*},password=${pair#*=}]")
    done
    [ "${pair%%=*}" = broker ] || plain+=" user_${pair%%=*}=\"${pair#*=}\""
  done
  local ssl_listener=""
  [ -z "$ssl_port" ] || ssl_listener=",SSL://127.0.0.1:$ssl_port"
  (umask 077 && sed -e "s#@DATA_DIR@#$data#g" -e "s#@PORT@#$port#g" -e "s#@TLS_DIR@#$tls#g" \
       -e "s#@CONTROLLER_PORT@#$controller_port#g" -e "s#@PARTITIONS@#$partitions#g" \
       -e "s#@SSL_LISTENER@#$ssl_listener#g" -e "s#@BROKER_PASSWORD@#$password#g" \
       -e "s#@PLAIN_USERS@#$plain#g" \
       "$here/server-secure.properties.in" > "$data/server.properties")
}
