#!/bin/sh
# `make run`: on first use creates the data directory (./veil-data, or $VEIL_DATA) with a
# demo tenant and the example policies of examples/; checks that the listen address is
# free (and says who holds it if not); then prints the demo admin token and a
# ready-to-paste curl session, and runs the proxy in the foreground (Ctrl-C stops it).
#
# The demo admin token is kept in DATA/demo-admin.token (mode 0600) and reused while it is
# valid, so that running `make run` again does not leave one more live admin token behind;
# revoke it (veil token revoke) and the next `make run` makes a new one.
set -eu
veil=$1
data=${VEIL_DATA:-./veil-data}
tokfile=$data/demo-admin.token

if [ ! -f "$data/veil.yaml" ]; then
    "$veil" init --data "$data" >/dev/null
    "$veil" tenant create demo --data "$data" >/dev/null
    for p in examples/*.yaml; do
        "$veil" collection apply --tenant demo "$p" --data "$data"
    done
fi
listen=$(sed -n 's/^listen: *//p' "$data/veil.yaml" | sed 's/ *#.*//')
url="http://$listen"

# Is something listening there already? curl exits 7 when nothing accepts the connection.
if command -v curl >/dev/null 2>&1; then
    rc=0
    answer=$(curl -s --max-time 3 "$url/healthz" 2>/dev/null) || rc=$?
    if [ "$rc" -ne 7 ]; then
        case "$answer" in
            *'"status"'*'"stores"'*) who="a veil server already runs there (stop it with Ctrl-C in its terminal)" ;;
            *) who="another program listens there" ;;
        esac
        echo "veil: cannot start on $listen: $who." >&2
        echo "veil: free the port, or set another address in the listen: line of $data/veil.yaml." >&2
        exit 1
    fi
fi

# The demo admin token: the one kept in $tokfile while it is valid, else a new one.
token=""
if [ -f "$tokfile" ]; then
    token=$(cat "$tokfile")
    id=$(printf '%s' "$token" | sed -n 's/^veil_\([0-9a-f]\{16\}\)_.*/\1/p')
    if [ -z "$id" ] || ! "$veil" token list --tenant demo --data "$data" 2>/dev/null |
        grep -q "\"id\":\"$id\""; then
        token=""
    fi
fi
if [ -n "$token" ]; then
    how="the same as last time, kept in $tokfile (revoke it with: $veil token revoke $id --data $data)"
else
    token=$("$veil" token create --tenant demo --role admin --data "$data" 2>/dev/null)
    id=$(printf '%s' "$token" | sed -n 's/^veil_\([0-9a-f]\{16\}\)_.*/\1/p')
    (umask 077 && printf '%s\n' "$token" >"$tokfile.new") && mv "$tokfile.new" "$tokfile"
    how="new, kept in $tokfile and reused by the next make run while it is valid (revoke it with: $veil token revoke $id --data $data)"
fi

cat <<MSG

  veil is starting on $url, data in $data (stores: $data/cloud/).
  It runs in the foreground: Ctrl-C stops it.

  The admin token of tenant "demo": $how.

    export VEIL_TOKEN=$token

  Then, in another terminal:

    curl -s -X PUT $url/v1/collections/invoices/docs/INV-1 \\
         -H "Authorization: Bearer \$VEIL_TOKEN" \\
         -d '{"invoice_no":"INV-1","org_id":"ACME","status":"open","issued_on":"2024-03-01",
              "amount":"1234.50","customer":{"name":"Jan de Vries","iban":"NL91ABNA0417164300"},
              "notes":"late payment, second reminder"}'
    curl -s $url/v1/collections/invoices/docs/INV-1 -H "Authorization: Bearer \$VEIL_TOKEN"
    curl -s -X POST $url/v1/collections/invoices/query -H "Authorization: Bearer \$VEIL_TOKEN" \\
         -d '{"where":{"org_id":"ACME","status":{"in":["open","overdue"]}}}'
    curl -s $url/v1/collections/invoices -H "Authorization: Bearer \$VEIL_TOKEN"

  Sample data:  $veil generate invoices --count 1000 > invoices.ndjson
                VEIL_ADDR=$url $veil import invoices invoices.ndjson

  What the untrusted store holds:  sqlite3 $data/cloud/cloud.db .dump | head

MSG
exec "$veil" server --data "$data"
