#!/bin/sh
# demo.sh - run postern in the foreground on loopback ports with the demo
# domains, on the embedded SQLite database. Used by `make demo` (README's
# quick start). Everything lives under build/demo (config, database,
# queue, log); nothing outside the source tree is touched. Ctrl-C stops it.
#
# Usage: scripts/demo.sh BUILD_DIR   (build/std; the programs are in BUILD_DIR/bin)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build/std}
top=$(pwd)/build/demo
port=${DEMO_SMTP_PORT:-2525}

mkdir -p "$top/conf" "$top/data" "$top/queue" "$top/vmail"
# The shipped configuration, pointed at the demo directory and loopback.
sed -e 's/^smtp .*inet /127.0.0.1:'"$port"'   inet /' conf/master.cf > "$top/conf/master.cf"
cp conf/main.cf "$top/conf/main.cf"
postern="$build/bin/postern -c $top/conf"
$postern conf set "myhostname = mail.demo.example" "data_directory = $top/data" \
	"queue_directory = $top/queue" "virtual_mailbox_base = $top/vmail" \
	"inet_interfaces = loopback-only" "smtpd_peername_lookup = no"
$postern check
if [ ! -e "$top/data/postern.db" ]; then
	$postern db init
	$postern db demo
fi

cat <<EOF

postern demo: SMTP on 127.0.0.1:$port, demo domains example.com and example.net.
Send a test message from another terminal:

    swaks --server 127.0.0.1:$port --from someone@example.org --to alice@example.com

or: python3 -c "import smtplib; smtplib.SMTP('127.0.0.1', $port).sendmail('someone@example.org', ['alice@example.com'], 'Subject: hi\n\nhello\n')"

It is queued durably in $top/queue/incoming (list it with: $build/bin/postern -c $top/conf sendmail -bp).
Delivery into Maildirs under $top/vmail arrives with the queue manager (issue 6).
Local submission: $build/bin/postern -c $top/conf sendmail alice@example.com < message
Ctrl-C stops the demo.

EOF

pids=
stop() {
	[ -n "$pids" ] && kill $pids 2>/dev/null
	wait 2>/dev/null
	exit 0
}
trap stop INT TERM
"$build/bin/pickup" -c "$top/conf" -e &
pids="$pids $!"
"$build/bin/smtpd" -c "$top/conf" -e &
pids="$pids $!"
wait
