# psycopg 3 and SQLAlchemy against Featherman's Postgres listener: prints one JSON object of
# observations for test/pgwire/psycopg.test.ts to check (this file asserts nothing itself).
import datetime, decimal, json, sys, uuid
import psycopg
import sqlalchemy

port, token = sys.argv[1], sys.argv[2]
dsn = f"host=127.0.0.1 port={port} dbname=default user=analyst password={token} sslmode=disable"
out = {}
with psycopg.connect(dsn, autocommit=True) as conn:
    # Server-side binding: psycopg sends $1 parameters in Bind.
    cur = conn.execute("SELECT id, name FROM users WHERE id = %s AND name = %s", (7, "user 7"))
    out["param_row"] = [list(r) for r in cur.fetchall()]
    out["injection"] = conn.execute("SELECT count(*) FROM users WHERE name = %s", ("x' OR '1'='1",)).fetchone()[0]
    values = {
        "int": 42, "bigint": 2**40, "numeric": decimal.Decimal("12345.678"), "float": 2.5, "text": "héllo 'q'", "bool": True,
        "date": datetime.date(2024, 2, 29), "time": datetime.time(13, 14, 15, 500000), "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5, 123456),
        "timestamptz": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), "interval": datetime.timedelta(days=3, hours=4),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"), "bytea": b"\x00\x01\xffab",
        "int_array": [1, 2, 3],
    }
    trip = {}
    for binary in (False, True):
        for k, v in values.items():
            try:
                got = conn.cursor(binary=binary).execute("SELECT %s AS v", (v,)).fetchone()[0]
                expect = v.obj if isinstance(v, psycopg.types.json.Json) else v
                trip[f"{k}{'/binary' if binary else ''}"] = "ok" if got == expect else f"got {got!r}"
            except Exception as e:  # reported, not raised: the test names what failed
                trip[f"{k}{'/binary' if binary else ''}"] = f"error {e}"
                conn.rollback() if not conn.autocommit else None
    out["roundtrip"] = trip
    row = conn.execute("SELECT active, balance, score, big, born, wake, seen, seen_tz, tenure, uid, doc, raw, tags, labels FROM users WHERE id = 2").fetchone()
    out["users_row"] = [repr(v) for v in row]
    try:
        conn.execute("SELECT * FROM no_such_table")
    except psycopg.Error as e:
        out["error_sqlstate"] = e.sqlstate
    try:
        conn.execute("SELECT * FROM read_csv('/etc/passwd')")
    except psycopg.Error as e:
        out["refused_sqlstate"] = e.sqlstate
    with conn.cursor(name="big") as named:
        pass
engine = sqlalchemy.create_engine(f"postgresql+psycopg://analyst:{token}@127.0.0.1:{port}/default?sslmode=disable")
insp = sqlalchemy.inspect(engine)
out["table_names"] = sorted(insp.get_table_names())
out["columns"] = [[c["name"], str(c["type"])] for c in insp.get_columns("users")]
with engine.connect() as c:
    out["sqlalchemy_count"] = c.execute(sqlalchemy.text("SELECT count(*) FROM users WHERE id > :n"), {"n": 90}).scalar()
print(json.dumps(out))
