# psycopg 3 and SQLAlchemy against Featherman's Postgres listener: prints one JSON object of
# observations for test/pgwire/psycopg.test.ts to check (this file asserts nothing itself).
import datetime, decimal, json, sys, uuid
import psycopg
from psycopg.types.json import Json, Jsonb
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
        "json": Json({"a": [1, 2.5, {"b": None}], "s": "x'y \u00e9"}), "json_list": Json([1, "two", True]),
        "jsonb": Jsonb({"k": [1, 2]}), "json_array": [Json({"a": 1}), Json([2])],
        "float_array": [1.5, -2.25], "bool_array": [True, False, None], "numeric_array": [decimal.Decimal("1.5"), decimal.Decimal("-2.25")],
        "date_array": [datetime.date(2024, 2, 29)], "timestamp_array": [datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)],
        "timestamptz_array": [datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)],
        "interval_array": [datetime.timedelta(days=3, hours=4)], "uuid_array": [uuid.UUID("12345678-1234-5678-1234-567812345678")],
        "bytea_array": [b"\x00\x01ab"], "time_array": [datetime.time(13, 14, 15, 500000)],
    }
    # A list of str goes as OID 0 (unknown) in text, so with real Postgres too it is cast ($1::text[]) or sent binary (%b).
    text_array = ["a", "b c", None, 'q"x', "", "NULL", "{x}", "back\\slash", "h\u00e9"]
    casts = {"text_array": (text_array, "%s::text[]"), "text_array_b": (text_array, "%b"), "varchar_array": (["v", "w"], "CAST(%s AS varchar[])")}
    plain = lambda v: [plain(e) for e in v] if isinstance(v, list) else (v.obj if isinstance(v, (Json, Jsonb)) else v)
    trip = {}
    exact = {}
    for binary in (False, True):
        cases = {k: (v, "%s") for k, v in values.items()} | casts
        for k, (v, placeholder) in cases.items():
            key = f"{k}{'/binary' if binary else ''}"
            try:
                cur = conn.cursor(binary=binary).execute(f"SELECT {placeholder} AS v", (v,))
                got = cur.fetchone()[0]
                trip[key] = "ok" if got == plain(v) else f"got {got!r}"
                if k.startswith(("json", "jsonb", "text_array")):
                    exact[key] = {"oid": cur.description[0].type_code, "value": got}
            except Exception as e:  # reported, not raised: the test names what failed
                trip[key] = f"error {e}"
                conn.rollback() if not conn.autocommit else None
    out["roundtrip"] = trip
    out["exact"] = exact
    # Columns of a table: a JSON column and a VARCHAR[] column, described and parsed as json and text[].
    for binary in (False, True):
        cur = conn.cursor(binary=binary).execute("SELECT doc::JSON AS doc, labels FROM users WHERE id = 3")
        out[f"columns_typed{'/binary' if binary else ''}"] = {"oids": [d.type_code for d in cur.description], "row": list(cur.fetchone())}
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
