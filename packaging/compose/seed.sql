-- seed.sql: the demo source for docker-compose.yml, run once by the postgres image when its
-- volume is new (/docker-entrypoint-initdb.d). pgenrich run creates its own tables.
CREATE TABLE master_table (id bigint PRIMARY KEY);
INSERT INTO master_table SELECT generate_series(1, 20000);
