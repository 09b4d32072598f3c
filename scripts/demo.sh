#!/bin/sh
# demo.sh - run postern in the foreground on loopback ports with the demo
# domains, on the embedded SQLite database. Used by `make demo` (README's
# quick start). Everything lives under build/demo (config, database,
# queue, Maildirs, log); nothing outside the source tree is touched.
# Ctrl-C stops it (master stops its children).
#
# Usage: scripts/demo.sh BUILD_DIR   (build/std; the programs are in BUILD_DIR/bin)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build/std}
top=$(pwd)/build/demo
port=${DEMO_SMTP_PORT:-2525}
subport=${DEMO_SUBMISSION_PORT:-2587}
smtpsport=${DEMO_SMTPS_PORT:-2465}

mkdir -p "$top/conf" "$top/data" "$top/queue" "$top/vmail"
# The shipped configuration, pointed at the demo directory and loopback.
sed -e 's/^smtp .*inet /127.0.0.1:'"$port"'   inet /' \
	-e 's/^submission .*inet /127.0.0.1:'"$subport"'   inet /' \
	-e 's/^smtps .*inet /127.0.0.1:'"$smtpsport"'   inet /' conf/master.cf > "$top/conf/master.cf"
cp conf/main.cf "$top/conf/main.cf"
postern="$build/bin/postern -c $top/conf"
$postern conf set "myhostname = mail.demo.example" "data_directory = $top/data" \
	"queue_directory = $top/queue" "virtual_mailbox_base = $top/vmail" \
	"inet_interfaces = loopback-only" "smtpd_peername_lookup = no" \
	"maillog_file = $top/maillog" "2bounce_notice_recipient = postmaster@example.com"
# Mailboxes belong to virtual_uid_maps' user, who must be able to create
# them under virtual_mailbox_base: uid 5000 when run as root (as in
# conf/main.cf), else the user running the demo.
if [ "$(id -u)" = 0 ]; then
	chown 5000:5000 "$top/vmail"
else
	$postern conf set "virtual_uid_maps = static:$(id -u)" \
		"virtual_gid_maps = static:$(id -g)" "virtual_minimum_uid = $(id -u)"
fi
# A self-signed certificate for STARTTLS and smtps (main.cf names
# $config_directory/tls/postern-cert.pem and postern-key.pem).
if [ ! -e "$top/conf/tls/postern-cert.pem" ]; then
	$postern tls selfsigned -n mail.demo.example >/dev/null
fi
$postern check
if [ ! -e "$top/data/postern.db" ]; then
	$postern db init
	$postern db demo
fi

cat <<EOF

postern demo: SMTP on 127.0.0.1:$port (STARTTLS), submission on 127.0.0.1:$subport
(STARTTLS + AUTH), smtps on 127.0.0.1:$smtpsport (TLS + AUTH); demo domains
example.com and example.net (master, smtpd, pickup, qmgr and the virtual
delivery agent, in the foreground). Every demo mailbox's password is "demo".
Send a test message from another terminal:

    swaks --server 127.0.0.1:$port --from someone@example.org --to alice@example.com

or as a logged-in user, the way a mail program submits:

    swaks --server 127.0.0.1:$subport --tls --auth-user alice@example.com --auth-password demo --from alice@example.com --to bob@example.com

or: python3 -c "import smtplib; smtplib.SMTP('127.0.0.1', $port).sendmail('someone@example.org', ['alice@example.com'], 'Subject: hi\\n\\nhello\\n')"

It lands in $top/vmail/example.com/alice/new/ (the log: $top/maillog).
Queue: $build/bin/postern -c $top/conf queue list
Trace an address: $build/bin/postern -c $top/conf trace info@example.com
Local submission: $build/bin/postern -c $top/conf sendmail alice@example.com < message
Ctrl-C stops the demo.

EOF

exec "$build/bin/postern" -c "$top/conf" start-fg
