-- sqlite_rows.sql — queries for tests/programs/sqlite_rows.sh, run after the
-- 100,000 generated INSERTs.  Every result is deterministic.
.headers on
.mode list
PRAGMA cache_size = -65536;
PRAGMA temp_store = memory;

SELECT count(*) AS rows, sum(qty) AS qty, total(price) AS price,
       min(name) AS first, max(name) AS last, avg(length(note)) AS avg_note
  FROM item;

SELECT category, count(*), sum(qty), printf('%.4f', avg(price)), group_concat(id % 10, '')
  FROM (SELECT * FROM item ORDER BY id)
 GROUP BY category ORDER BY category;

-- A sort of every row without an index, then the same with one.
SELECT id, name, price FROM item ORDER BY price DESC, name, id LIMIT 15;
SELECT sum(id * rn) FROM (SELECT id, row_number() OVER (ORDER BY note, id) AS rn FROM item);
CREATE INDEX item_price ON item(price, name);
CREATE INDEX item_cat ON item(category, qty);
SELECT id, name, price FROM item ORDER BY price DESC, name, id LIMIT 15;
SELECT count(*), sum(qty) FROM item WHERE category = 'cat07' AND qty BETWEEN 10 AND 40;
EXPLAIN QUERY PLAN SELECT count(*) FROM item WHERE category = 'cat07' AND qty > 10;

-- Joins, window functions, distinct, string building.
CREATE TABLE cat AS SELECT DISTINCT category AS name, length(category) AS len FROM item;
SELECT c.name, count(*), max(i.price)
  FROM cat c JOIN item i ON i.category = c.name
 WHERE i.qty % 3 = 0 GROUP BY c.name ORDER BY 2 DESC, 1 LIMIT 5;
SELECT category, id, running FROM (
    SELECT category, id, sum(qty) OVER (PARTITION BY category ORDER BY id) AS running
      FROM item) WHERE id % 9973 = 0 ORDER BY id;
SELECT count(DISTINCT name), count(DISTINCT substr(note, 1, 3)) FROM item;
SELECT length(group_concat(name, ',')), hex(substr(group_concat(note, ''), 1000, 16))
  FROM (SELECT name, note FROM item ORDER BY id);

-- Updates and deletes in a transaction, then a rollback and an integrity check.
BEGIN;
UPDATE item SET note = note || '-' || upper(name), qty = qty + 1 WHERE id % 5 = 0;
DELETE FROM item WHERE id % 7 = 0;
SELECT count(*), sum(qty), sum(length(note)) FROM item;
ROLLBACK;
SELECT count(*), sum(qty), sum(length(note)) FROM item;
SELECT json_group_array(json_object('id', id, 'n', name)) FROM (SELECT id, name FROM item WHERE id <= 5);
PRAGMA integrity_check;
