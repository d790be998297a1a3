#!/bin/sh
# Bans C calls that have bitten others (curl's checksrc.pl in miniature): unbounded string
# copies and formatting, strtok's hidden state, atoi's silent failures. Prints TAP.
set -u
cd "$(dirname "$0")/.." || exit 1
bad=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atof)\s*\(' \
      src/*/*.c src/*/*.h include/veil/*.h 2>/dev/null)
if [ -n "$bad" ]; then
    echo "not ok 1 - checksrc: banned calls"
    echo "$bad" | sed 's/^/# /'
    exit 1
fi
echo "ok 1 - checksrc: no banned calls in src/"
