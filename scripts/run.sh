#!/bin/sh
# `make run`: on first use creates the data directory (./veil-data, or $VEIL_DATA) with a
# demo tenant and the example policies of examples/, then prints a fresh admin token and a
# ready-to-paste curl session, and runs the proxy in the foreground (Ctrl-C stops it).
set -eu
veil=$1
data=${VEIL_DATA:-./veil-data}

if [ ! -f "$data/veil.yaml" ]; then
    "$veil" init --data "$data" >/dev/null
    "$veil" tenant create demo --data "$data" >/dev/null
    for p in examples/*.yaml; do
        "$veil" collection apply --tenant demo "$p" --data "$data"
    done
fi
token=$("$veil" token create --tenant demo --role admin --data "$data" 2>/dev/null)
listen=$(sed -n 's/^listen: *//p' "$data/veil.yaml")
url="http://$listen"

cat <<MSG

  veil is starting on $url, data in $data (stores: $data/cloud/).

  A new admin token for tenant "demo" (shown once; only its hash is kept):

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

  What the untrusted store holds:  sqlite3 $data/cloud/cloud.db .dump | head

MSG
exec "$veil" server --data "$data"
