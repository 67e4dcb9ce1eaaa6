#!/usr/bin/env bash
# sqlite_rows.sh — sqlite3 inserts 100,000 generated rows into an on-disk
# database in one transaction, then runs the aggregates, sorts, indexes, joins
# and window functions of data/sqlite_rows.sql, plainly and with
# LD_PRELOAD=$NM_LIB.  Output and the database's dump must be identical.
set -u
. "$(dirname "$0")/data/common.sh"
nm_need sqlite3 awk
nm_init sqlite_rows

sql="$NM_TMP/all.sql"
{
    echo "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT,"
    echo "                   qty INTEGER, price REAL, note TEXT);"
    echo "BEGIN;"
    awk 'BEGIN {
        srand(4242)
        letters = "abcdefghijklmnopqrstuvwxyz"
        for (i = 1; i <= 100000; i++) {
            name = ""; n = 3 + int(rand() * 10)
            for (j = 0; j < n; j++) name = name substr(letters, 1 + int(rand() * 26), 1)
            note = ""; n = int(rand() * 40)
            for (j = 0; j < n; j++) note = note substr(letters, 1 + int(rand() * 26), 1)
            printf "INSERT INTO item VALUES (%d, \x27%s\x27, \x27cat%02d\x27, %d, %d.%02d, \x27%s\x27);\n",
                   i, name, int(rand() * 23), int(rand() * 100), int(rand() * 10000), int(rand() * 100), note
        }
    }'
    echo "COMMIT;"
    cat "$NM_DATA/sqlite_rows.sql"
    echo ".output dump.sql"
    echo ".dump"
} >"$sql"

nm_run_pair sqlite sqlite3 -bail test.db ".read $sql"
nm_compare sqlite
nm_check_loaded sqlite sqlite3
if ! cmp -s "$NM_TMP/sqlite.base/dump.sql" "$NM_TMP/sqlite.pre/dump.sql"; then
    nm_fail "sqlite: the database dump differs with LD_PRELOAD"
    nm_show_diff "$NM_TMP/sqlite.base/dump.sql" dump.sql "$NM_TMP/sqlite.pre/dump.sql"
fi
nm_check_binding "sqlite3 libc.so.6" sqlite3 :memory: "SELECT 1"

# The run did what it should: every row went in and the check passed.
out="$NM_TMP/sqlite.base.out"
grep -q '^100000|' "$out" || nm_fail "sqlite: the row count is not 100000"
[ "$(tail -n 1 "$out")" = ok ] || nm_fail "sqlite: integrity_check did not end the output with ok"
[ "$(grep -c '^INSERT INTO item VALUES' "$NM_TMP/sqlite.base/dump.sql")" -eq 100000 ] ||
    nm_fail "sqlite: the dump does not hold 100000 rows"
echo "sqlite: $(wc -l <"$out") lines of query output, dump $(stat -c %s "$NM_TMP/sqlite.base/dump.sql") bytes"

nm_finish
