#!/bin/sh
# Bans C calls that have bitten others (curl's checksrc.pl in miniature): unbounded string
# copies and formatting, strtok's hidden state, atoi's silent failures. Also keeps the
# repository self-contained: no file may point at documents outside it (a clone has only
# what is in it), so code, tests and docs cite docs/, the README and the man pages.
# Prints TAP.
set -u
cd "$(dirname "$0")/.." || exit 1
rc=0
bad=$(grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atof)\s*\(' \
      src/*/*.c src/*/*.h include/veil/*.h 2>/dev/null)
if [ -n "$bad" ]; then
    echo "not ok 1 - checksrc: banned calls"
    echo "$bad" | sed 's/^/# /'
    rc=1
else
    echo "ok 1 - checksrc: no banned calls in src/"
fi
outside=$(grep -rnIE '\.\./shared|shared/(SPEC|DESIGN|STYLE|vectors|hooks)|\bSPEC\b|(SPEC|DESIGN|STYLE)\.md' \
          --exclude-dir=.git --exclude-dir='build*' --exclude-dir=veil-data \
          --exclude-dir=__pycache__ --exclude=checksrc.sh . 2>/dev/null)
if [ -n "$outside" ]; then
    echo "not ok 2 - checksrc: references to documents outside the repository"
    echo "$outside" | sed 's/^/# /'
    rc=1
else
    echo "ok 2 - checksrc: nothing refers to documents outside the repository"
fi
exit $rc
