-- The tiny shop database of examples/verify_stages.yaml; examples/data/shop.sqlite is built from it:
--   sqlite3 examples/data/shop.sqlite < examples/data/shop.sql
-- (or: python -c "import sqlite3; sqlite3.connect('examples/data/shop.sqlite').executescript(open('examples/data/shop.sql').read())")
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), total REAL NOT NULL);
INSERT INTO customers VALUES (1, 'Ann', 'Leeds'), (2, 'Bob', 'York'), (3, 'Cy', 'Leeds'), (4, 'Dee', 'Hull');
INSERT INTO orders VALUES (1, 1, 12.5), (2, 1, 30.0), (3, 2, 7.25), (4, 3, 18.0), (5, 3, 2.0);
