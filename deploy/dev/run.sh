#!/usr/bin/env bash
# `make run`: the whole system on this machine with its embedded defaults.
#
# Starts (the Kafka broker is already up: `make kafka-up`):
#   mail catcher   SMTP 127.0.0.1:1025, every mail saved as .data/mail/*.eml
#   SMS sink       http://127.0.0.1:8025/sms, every SMS appended to .data/sms.jsonl
#   sla-engine     http://127.0.0.1:8081   (SQLite .data/engine.db unless DATABASE_URL)
#   notifier       http://127.0.0.1:8082   (SQLite .data/notifier.db unless DATABASE_URL)
#   ingest         http://127.0.0.1:8080   (bearer token: dev-token)
# Ctrl-C stops all of them and the broker.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
bin=$root/.venv/bin
mkdir -p .data/mail .data/logs

export SLAWATCH_ENV=development  # the development tokens and keys below are accepted
export SLAWATCH_CONFIG_FILE=${SLAWATCH_CONFIG_FILE:-$root/deploy/config/slawatch.yaml}
export SLAWATCH_SMTP_PORT=${SLAWATCH_SMTP_PORT:-1025}
export SLAWATCH_SMS_URL=${SLAWATCH_SMS_URL:-http://127.0.0.1:8025/sms}
export SLAWATCH_SMS_TOKEN=${SLAWATCH_SMS_TOKEN:-dev-sms-token}
export SLAWATCH_INGEST_TOKENS=${SLAWATCH_INGEST_TOKENS:-dev-token}

pids=()
cleanup() {
  trap - INT TERM EXIT
  trap '' PIPE  # keep stopping even if the terminal's pipe is gone
  echo; echo "stopping slawatch..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  deploy/kafka/kafka.sh stop
}
trap cleanup INT TERM EXIT

start() {  # name, command...
  local name=$1; shift
  "$@" > ".data/logs/$name.log" 2>&1 &
  pids+=($!)
}

wait_http() {  # name, url
  for _ in $(seq 1 120); do
    curl -fs -o /dev/null "$2" && return 0
    sleep 0.5
  done
  echo "$1 did not come up; see .data/logs/$1.log" >&2
  tail -20 ".data/logs/$1.log" >&2
  exit 1
}

start mailcatcher "$bin/python" deploy/dev/mailcatcher.py --port "$SLAWATCH_SMTP_PORT" --dir .data/mail
start sms-sink "$bin/python" deploy/dev/sms_sink.py --port 8025 --token "$SLAWATCH_SMS_TOKEN" --out .data/sms.jsonl
start sla-engine "$bin/slawatch-engine"
start notifier "$bin/slawatch-notifier"
start ingest "$bin/slawatch-ingest"
wait_http sla-engine http://127.0.0.1:8081/readyz
wait_http notifier http://127.0.0.1:8082/readyz
wait_http ingest http://127.0.0.1:8080/readyz

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
month=$(TZ=Asia/Shanghai date +%Y-%m)
cat <<TXT

slawatch is running.
  ingest      http://127.0.0.1:8080/docs   (token: dev-token)
  sla-engine  http://127.0.0.1:8081/metrics
  notifier    http://127.0.0.1:8082/metrics
  mails       .data/mail/*.eml      SMS  .data/sms.jsonl      logs  .data/logs/

Post a first ticket (P1 network incident: response due in 15 minutes):

  curl -s -X POST http://127.0.0.1:8080/v1/events \\
    -H 'Authorization: Bearer dev-token' -H 'Content-Type: application/json' \\
    -d '{"event_id": "demo-1", "type": "ticket.created", "occurred_at": "$now",
         "source": "demo", "data": {"id": "T-1", "priority": "P1", "service": "network",
         "title": "Core switch down", "assignee": {"id": "li.wei", "email": "li.wei@example.com"}}}'

  curl -s -H 'Authorization: Bearer dev-admin-token' \\
    http://127.0.0.1:8081/v1/tickets/demo/T-1/sla

Give "occurred_at" a time 14 minutes in the past and the 90 % warning mail to
the assignee lands in .data/mail/ at once; a minute later the breach: an SMS
to the on-call engineer in .data/sms.jsonl and a mail to the supervisor.

The compliance report of the example contract for this month (docs/COMPLIANCE.md):

  curl -s -H 'Authorization: Bearer dev-report-token' \\
    'http://127.0.0.1:8081/v1/reports/acme?period=$month'

and as the document a service manager sends the customer (or format=html, lang=zh-CN):

  curl -s -H 'Authorization: Bearer dev-report-token' -o acme-$month.pdf \\
    'http://127.0.0.1:8081/v1/reports/acme?period=$month&format=pdf'

Last month's report has been mailed to the contract's report_to, the PDF
attached: see .data/mail/.

Press Ctrl-C to stop everything.
TXT
# wait for any service to exit (a crash) or for Ctrl-C
wait -n "${pids[@]}"
echo "a service exited; see .data/logs/" >&2
