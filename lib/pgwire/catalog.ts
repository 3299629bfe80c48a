// Catalog questions from tools (psql's \dt and \d, JDBC's DatabaseMetaData, SQLAlchemy's inspector)
// ask pg_catalog and information_schema, which the sandbox rightly refuses on a worker. They are
// answered here instead, by a small in-process DuckDB holding empty copies of the lake's tables:
// the tables the connection's principal may read (learnt through the router, so the same
// authorisation applies), with their columns and types, and nothing else. DuckDB's own pg_catalog
// views then answer, after a few rewrites of what DuckDB does not parse.
import { DuckDBInstance, JsonDuckDBValueConverter, type DuckDBConnection } from '@duckdb/node-api';
import { PgError, type Rows } from './result.js';
import { column, PG_TYPE_ROWS, type Column } from './types.js';

/** Whether a query asks about the catalog rather than the lake's data. */
export function isCatalogQuery(sql: string): boolean {
  return CATALOG_QUERY.test(sql);
}
const CATALOG_QUERY = new RegExp(
  String.raw`\b(pg_catalog|information_schema)\s*\.` +
    String.raw`|\bpg_(class|namespace|attribute|type|proc|database|settings|roles|user|tables|views|index|description|am|enum|range|` +
    String.raw`constraint|attrdef|inherits|collation|matviews|extension|stat_\w+)\b` +
    String.raw`|\b(version|current_schema|current_schemas|current_setting|pg_backend_pid|has_\w+_privilege|pg_get_\w+|format_type|` +
    String.raw`set_config|txid_current|pg_encoding_to_char|obj_description|col_description|pg_table_is_visible)\s*\(`,
  'i',
);

interface Runner {
  /** As the connection's principal, or (`lister`) as the mirror's own, which may list every table. */
  run(sql: string, as?: 'lister'): Promise<Rows>;
  catalog: string;
  pool?: string;
  principal?: { user: string; uid?: string };
}
interface Mirror {
  at: number;
  connection: Promise<DuckDBConnection>;
}

const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;
const MIRROR_MS = 30_000;

const FUNCTIONS = [
  'format_type',
  'pg_get_userbyid',
  'pg_table_is_visible',
  'pg_type_is_visible',
  'pg_function_is_visible',
  'pg_get_expr',
  'pg_get_indexdef',
  'pg_get_constraintdef',
  'pg_get_viewdef',
  'pg_get_partkeydef',
  'pg_get_serial_sequence',
  'pg_get_statisticsobjdef_columns',
  'obj_description',
  'col_description',
  'shobj_description',
  'pg_encoding_to_char',
  'has_table_privilege',
  'has_schema_privilege',
  'has_database_privilege',
  'has_column_privilege',
  'version',
  'current_schema',
  'current_schemas',
  'pg_backend_pid',
  'array_lower',
  'array_upper',
  'pg_relation_is_publishable',
  'pg_total_relation_size',
  'pg_relation_size',
  'txid_current',
  'set_config',
  'current_setting',
  'pg_is_in_recovery',
  'quote_ident',
  'pg_get_function_result',
  'pg_get_function_arguments',
  'pg_postmaster_start_time',
  'pg_tablespace_location',
  'pg_is_other_temp_schema',
  'pg_my_temp_schema',
  'to_regclass',
  'to_regtype',
];

const MIRRORED_RELATION = new RegExp(
  String.raw`(?<![\w."])(pg_(?:class|namespace|attribute|type|proc|database|settings|roles|user|tables|views|index|description|am|enum|` +
    String.raw`range|constraint|attrdef|inherits|collation|matviews|extension|tablespace|depend|trigger|rewrite|policy|sequence|` +
    String.raw`statistic_ext|publication|publication_rel|partitioned_table|foreign_table|shdescription|opclass|operator|` +
    String.raw`event_trigger|authid|auth_members|stat_user_tables|indexes))\b(?!\s*\()`,
  'gi',
);

/** Catalog SQL as the mirror runs it: pg_catalog and information_schema are ours (db "fm"), and a few spellings DuckDB lacks. */
export function rewriteCatalogSql(sql: string): string {
  const fn = new RegExp(`(?<![\\w."])(?:pg_catalog\\.)?(${FUNCTIONS.join('|')})\\s*\\(`, 'gi');
  return sql
    .replace(/OPERATOR\s*\(\s*pg_catalog\.([~!<>=@&|+*/-]+)\s*\)/gi, ' $1 ')
    .replace(/\s+COLLATE\s+pg_catalog\."?default"?/gi, '')
    .replace(/\s+COLLATE\s+"C"/gi, '')
    .replace(fn, (_m, name: string) => `fm.pgc.${name.toLowerCase()}(`)
    .replace(/(?<![\w."])pg_catalog\.(\w+)\s*\(/gi, '$1(')
    .replace(/(?<![\w."])(?:pg_catalog\.)?json_build_object\s*\(/gi, 'json_object(')
    .replace(/\bAS\s+(?:pg_catalog\.)?(regclass|regtype|regproc|regnamespace|oid)\s*\)/gi, 'AS BIGINT)')
    .replace(/::\s*pg_catalog\.(int2|int4|int8|float4|float8|bool|text|varchar|numeric|date|timestamp|timestamptz)\b/gi, '::$1')
    .replace(/::\s*(?:pg_catalog\.)?(regproc|regprocedure)\b/gi, '::VARCHAR')
    .replace(
      /::\s*(?:pg_catalog\.)?(regclass|regtype|regnamespace|regrole|oid|xid|int2vector|oidvector)\b(\[\])?/gi,
      (_m, _t, arr?: string) => `::BIGINT${arr ?? ''}`,
    )
    .replace(/::\s*(?:pg_catalog\.)?("char"|name|text|bpchar|varchar)\b/gi, '::VARCHAR')
    .replace(/(?<![\w."])pg_catalog\./gi, 'fm.pgc.')
    .replace(/(?<![\w."])information_schema\./gi, 'fm.infs.')
    .replace(MIRRORED_RELATION, 'fm.pgc.$1');
}

export interface MirrorTable {
  schema: string;
  table: string;
  columns: Column[];
}

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** The DDL of the mirror's own pg_catalog and information_schema, describing `tables` only. */
export function catalogDdl(catalog: string, user: string, tables: MirrorTable[]): string[] {
  const typeValues = PG_TYPE_ROWS.map((t) => `(${t[0]}, ${lit(t[1])}, ${lit(t[2])}, ${t[3]}, ${lit(t[4])}, ${t[5]}, ${t[6]})`).join(', ');
  const schemas = [...new Set(['main', ...tables.map((t) => t.schema)])];
  const nsOid = (s: string) => 2200 + schemas.indexOf(s);
  const ddl: string[] = [
    "ATTACH ':memory:' AS fm",
    'CREATE SCHEMA fm.pgc',
    'CREATE SCHEMA fm.infs',
    `CREATE TABLE fm.pgc.pg_namespace AS SELECT * FROM (VALUES ${[
      ...schemas.map(
        (s) => `(${nsOid(s)}::BIGINT, ${lit(s)}, 10::BIGINT,
      NULL::VARCHAR)`,
      ),
      "(11::BIGINT, 'pg_catalog', 10::BIGINT, NULL::VARCHAR)",
      "(13000::BIGINT, 'information_schema', 10::BIGINT, " + 'NULL::VARCHAR)',
    ].join(', ')}) v(oid, nspname, nspowner, nspacl)`,
    `CREATE TABLE fm.pgc.pg_type AS SELECT oid::BIGINT AS oid, typname, 11::BIGINT AS typnamespace, 10::BIGINT AS typowner,
      typlen::SMALLINT AS typlen,
       typlen > 0 AND typlen <= 8 AS typbyval, CASE WHEN typcategory = 'X' THEN 'p' ELSE 'b' END AS typtype, typcategory, false AS
         typispreferred, true AS typisdefined, ',' AS typdelim,
       0::BIGINT AS typrelid, typelem::BIGINT AS typelem, typarray::BIGINT AS typarray, typname || 'in' AS typinput, typname || 'out' AS
         typoutput, typname || 'recv' AS typreceive,
       typname || 'send' AS typsend, '-' AS typmodin, '-' AS typmodout, '-' AS typanalyze, 'i' AS typalign, 'p' AS typstorage, false AS
         typnotnull, 0::BIGINT AS typbasetype,
       -1 AS typtypmod, 0 AS typndims, 0::BIGINT AS typcollation, NULL::VARCHAR AS typdefaultbin, NULL::VARCHAR AS typdefault,
         NULL::VARCHAR AS typacl, fmt
     FROM (VALUES ${typeValues}) v(oid,
       typname, fmt, typlen, typcategory, typarray, typelem)`,
  ];
  const classes: string[] = [];
  const attributes: string[] = [];
  const infoColumns: string[] = [];
  tables.forEach((t, ti) => {
    const oid = 16384 + ti;
    classes.push(`(${oid}, ${lit(t.table)}, ${nsOid(t.schema)}, ${t.columns.length})`);
    t.columns.forEach((c, ci) => {
      const m = /^DECIMAL\((\d+),\s*(\d+)\)$/i.exec(c.duck);
      const typmod = m ? ((Number(m[1]) << 16) | Number(m[2])) + 4 : -1;
      attributes.push(`(${oid}, ${lit(c.name)}, ${c.type.oid}, ${c.type.size}, ${ci + 1}, ${typmod}, ${c.element ? 1 : 0})`);
      const fmt = PG_TYPE_ROWS.find((x) => x[0] === c.type.oid)?.[2] ?? 'text';
      infoColumns.push(
        `(${lit(t.schema)}, ${lit(t.table)}, ${lit(c.name)}, ${ci + 1}, ${lit(c.element ? 'ARRAY' : fmt)},
          ${lit(PG_TYPE_ROWS.find((x) => x[0] === c.type.oid)?.[1] ?? 'text')}, ${m ? m[1] : 'NULL'}, ${m ? m[2] : 'NULL'})`,
      );
    });
  });
  const none = (cols: string) =>
    `SELECT * FROM (VALUES (${cols
      .split(',')
      .map(() => 'NULL')
      .join(',')})) v(${cols}) WHERE false`;
  ddl.push(
    `CREATE TABLE fm.pgc.pg_class AS SELECT oid::BIGINT AS oid, relname, relnamespace::BIGINT AS relnamespace, 0::BIGINT AS reltype,
      0::BIGINT AS reloftype, 10::BIGINT AS relowner,
       2::BIGINT AS relam, oid::BIGINT AS relfilenode, 0::BIGINT AS reltablespace, 0 AS relpages, -1.0::FLOAT AS reltuples, 0 AS
         relallvisible, 0::BIGINT AS reltoastrelid,
       false AS relhasindex, false AS relisshared, 'p' AS relpersistence, 'r' AS relkind, relnatts::SMALLINT AS relnatts, 0::SMALLINT AS
         relchecks, false AS relhasrules,
       false AS relhastriggers, false AS relhassubclass, false AS relrowsecurity, false AS relforcerowsecurity, true AS relispopulated,
         'd' AS relreplident,
       false AS relispartition, 0::BIGINT AS relrewrite, 0::BIGINT AS relfrozenxid, 0::BIGINT AS relminmxid, NULL::VARCHAR[] AS relacl,
         NULL::VARCHAR[] AS reloptions, NULL::VARCHAR AS relpartbound
     FROM (VALUES ${classes.length ? classes.join(', ') : "(0, '', 0, 0)"}) v(oid, relname, relnamespace, relnatts) WHERE oid <> 0`,
    `CREATE TABLE fm.pgc.pg_attribute AS SELECT attrelid::BIGINT AS attrelid, attname, atttypid::BIGINT AS atttypid, 0 AS attstattarget,
      attlen::SMALLINT AS attlen,
       attnum::SMALLINT AS attnum, attndims AS attndims, -1 AS attcacheoff, atttypmod AS atttypmod, attlen > 0 AS attbyval, 'p' AS
         attstorage, 'i' AS attalign, false AS attnotnull,
       false AS atthasdef, false AS atthasmissing, '' AS attidentity, '' AS attgenerated, false AS attisdropped, true AS attislocal, 0 AS
         attinhcount, 0::BIGINT AS attcollation,
       NULL::VARCHAR[] AS attacl, NULL::VARCHAR[] AS attoptions, NULL::VARCHAR[] AS attfdwoptions, NULL::VARCHAR AS attmissingval, '' AS
         attcompression
     FROM (VALUES ${attributes.length ? attributes.join(', ') : "(0, '', 0, 0, 0, 0, 0)"}) v(attrelid, attname, atttypid, attlen, attnum,
       atttypmod, attndims) WHERE attrelid <> 0`,
    "CREATE TABLE fm.pgc.pg_am AS SELECT * FROM (VALUES (2::BIGINT, 'heap', 'heap_tableam_handler', 't')) v(oid, amname, amhandler, " +
      'amtype)',
    `CREATE TABLE fm.pgc.pg_database AS SELECT * FROM (VALUES (1::BIGINT, ${lit(catalog)}, 10::BIGINT, 6, 'C', 'C', false, true, -1,
      1663::BIGINT, NULL::VARCHAR[])) v(oid, datname, datdba, encoding, datcollate, datctype, datistemplate, datallowconn, datconnlimit,
        dattablespace, datacl)`,
    `CREATE TABLE fm.pgc.pg_roles AS SELECT * FROM (VALUES (10::BIGINT, ${lit(user)}, false, true, false, false, true, false, -1,
      NULL::VARCHAR, false)) v(oid, rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolconnlimit,
        rolvaliduntil, rolbypassrls)`,
    `CREATE TABLE fm.pgc.pg_user AS SELECT rolname AS usename, oid AS usesysid, false AS usecreatedb, false AS usesuper, false AS userepl,
      false AS usebypassrls, NULL::VARCHAR AS valuntil FROM fm.pgc.pg_roles`,
    'CREATE TABLE fm.pgc.pg_authid AS SELECT * FROM fm.pgc.pg_roles',
    `CREATE TABLE fm.pgc.pg_tables AS SELECT n.nspname AS schemaname, c.relname AS tablename, ${lit(user)} AS tableowner, NULL::VARCHAR AS
      tablespace, false AS hasindexes, false AS hasrules, false AS hastriggers, false AS rowsecurity FROM fm.pgc.pg_class c JOIN
        fm.pgc.pg_namespace n ON n.oid = c.relnamespace`,
    "CREATE TABLE fm.pgc.pg_tablespace AS SELECT * FROM (VALUES (1663::BIGINT, 'pg_default', 10::BIGINT)) v(oid, spcname, spcowner)",
    "CREATE TABLE fm.pgc.pg_settings AS SELECT * FROM (VALUES ('server_version', '16.4'), ('standard_conforming_strings', 'on'), " +
      "('max_identifier_length', '63'), ('TimeZone', 'UTC')) v(name, setting)",
    `CREATE TABLE fm.pgc.pg_views AS ${none('schemaname,viewname,viewowner,definition')}`,
    `CREATE TABLE fm.pgc.pg_matviews AS ${none('schemaname,matviewname,matviewowner,tablespace,hasindexes,ispopulated,definition')}`,
    `CREATE TABLE fm.pgc.pg_indexes AS ${none('schemaname,tablename,indexname,tablespace,indexdef')}`,
    `CREATE TABLE fm.pgc.pg_description AS SELECT 0::BIGINT AS objoid, 0::BIGINT AS classoid, 0 AS objsubid, '' AS description WHERE false`,
    `CREATE TABLE fm.pgc.pg_shdescription AS SELECT 0::BIGINT AS objoid, 0::BIGINT AS classoid, '' AS description WHERE false`,
    `CREATE TABLE fm.pgc.pg_index AS SELECT 0::BIGINT AS indexrelid, 0::BIGINT AS indrelid, 0::SMALLINT AS indnatts, 0::SMALLINT AS
      indnkeyatts, false AS indisunique, false AS indisprimary, false AS indisexclusion, true AS indimmediate, false AS indisclustered,
        true AS indisvalid, false AS indcheckxmin, true AS indisready, true AS indislive, false AS indisreplident, []::BIGINT[] AS indkey,
          []::BIGINT[] AS indcollation, []::BIGINT[] AS indclass, []::BIGINT[] AS indoption, NULL::VARCHAR AS indexprs, NULL::VARCHAR AS
            indpred, false AS indnullsnotdistinct WHERE false`,
    `CREATE TABLE fm.pgc.pg_constraint AS SELECT 0::BIGINT AS oid, '' AS conname, 0::BIGINT AS connamespace, '' AS contype, false AS
      condeferrable, false AS condeferred, true AS convalidated, 0::BIGINT AS conrelid, 0::BIGINT AS contypid, 0::BIGINT AS conindid,
        0::BIGINT AS conparentid, 0::BIGINT AS confrelid, '' AS confupdtype, '' AS confdeltype, '' AS confmatchtype, true AS conislocal, 0
          AS coninhcount, false AS connoinherit, []::SMALLINT[] AS conkey, []::SMALLINT[] AS confkey, []::BIGINT[] AS conpfeqop,
            []::BIGINT[] AS conppeqop, []::BIGINT[] AS conffeqop, []::BIGINT[] AS conexclop, NULL::VARCHAR AS conbin WHERE false`,
    `CREATE TABLE fm.pgc.pg_attrdef AS SELECT 0::BIGINT AS oid, 0::BIGINT AS adrelid, 0::SMALLINT AS adnum, '' AS adbin WHERE false`,
    `CREATE TABLE fm.pgc.pg_inherits AS SELECT 0::BIGINT AS inhrelid, 0::BIGINT AS inhparent, 0 AS inhseqno, false AS inhdetachpending
      WHERE false`,
    `CREATE TABLE fm.pgc.pg_collation AS SELECT 100::BIGINT AS oid, 'default' AS collname, 11::BIGINT AS collnamespace, 10::BIGINT AS
      collowner, 'd' AS collprovider, true AS collisdeterministic, -1 AS collencoding, NULL::VARCHAR AS collcollate, NULL::VARCHAR AS
        collctype`,
    `CREATE TABLE fm.pgc.pg_proc AS SELECT 0::BIGINT AS oid, '' AS proname, 0::BIGINT AS pronamespace, 0::BIGINT AS proowner, 0::BIGINT AS
      prolang, 'f' AS prokind, 0::BIGINT AS prorettype, []::BIGINT[] AS proargtypes, false AS proretset, '' AS prosrc WHERE false`,
    `CREATE TABLE fm.pgc.pg_enum AS SELECT 0::BIGINT AS oid, 0::BIGINT AS enumtypid, 0.0::FLOAT AS enumsortorder, '' AS enumlabel WHERE
      false`,
    `CREATE TABLE fm.pgc.pg_range AS SELECT 0::BIGINT AS rngtypid, 0::BIGINT AS rngsubtype WHERE false`,
    `CREATE TABLE fm.pgc.pg_extension AS SELECT 0::BIGINT AS oid, '' AS extname, 10::BIGINT AS extowner, 0::BIGINT AS extnamespace, false
      AS extrelocatable, '' AS extversion WHERE false`,
    `CREATE TABLE fm.pgc.pg_trigger AS SELECT 0::BIGINT AS oid, 0::BIGINT AS tgrelid, '' AS tgname, false AS tgisinternal, '' AS tgenabled
      WHERE false`,
    `CREATE TABLE fm.pgc.pg_rewrite AS SELECT 0::BIGINT AS oid, '' AS rulename, 0::BIGINT AS ev_class WHERE false`,
    `CREATE TABLE fm.pgc.pg_policy AS SELECT 0::BIGINT AS oid, '' AS polname, 0::BIGINT AS polrelid, '' AS polcmd, true AS polpermissive,
      []::BIGINT[] AS polroles, NULL::VARCHAR AS polqual, NULL::VARCHAR AS polwithcheck WHERE false`,
    `CREATE TABLE fm.pgc.pg_statistic_ext AS SELECT 0::BIGINT AS oid, 0::BIGINT AS stxrelid, '' AS stxname, 0::BIGINT AS stxnamespace,
      10::BIGINT AS stxowner, []::SMALLINT[] AS stxkeys, []::VARCHAR[] AS stxkind, -1 AS stxstattarget WHERE false`,
    `CREATE TABLE fm.pgc.pg_publication AS SELECT 0::BIGINT AS oid, '' AS pubname, false AS puballtables, true AS pubinsert, true AS
      pubupdate, true AS pubdelete, true AS pubtruncate, false AS pubviaroot WHERE false`,
    `CREATE TABLE fm.pgc.pg_publication_rel AS SELECT 0::BIGINT AS oid, 0::BIGINT AS prpubid, 0::BIGINT AS prrelid, NULL::VARCHAR AS
      prqual, NULL::SMALLINT[] AS prattrs WHERE false`,
    `CREATE TABLE fm.pgc.pg_publication_namespace AS SELECT 0::BIGINT AS oid, 0::BIGINT AS pnpubid, 0::BIGINT AS pnnspid WHERE false`,
    `CREATE TABLE fm.pgc.pg_partitioned_table AS SELECT 0::BIGINT AS partrelid, '' AS partstrat WHERE false`,
    `CREATE TABLE fm.pgc.pg_foreign_table AS SELECT 0::BIGINT AS ftrelid, 0::BIGINT AS ftserver WHERE false`,
    `CREATE TABLE fm.pgc.pg_sequence AS SELECT 0::BIGINT AS seqrelid, 0::BIGINT AS seqtypid, 0::BIGINT AS seqstart, 0::BIGINT AS
      seqincrement, 0::BIGINT AS seqmax, 0::BIGINT AS seqmin, 0::BIGINT AS seqcache, false AS seqcycle WHERE false`,
    `CREATE TABLE fm.pgc.pg_depend AS SELECT 0::BIGINT AS classid, 0::BIGINT AS objid, 0 AS objsubid, 0::BIGINT AS refclassid, 0::BIGINT
      AS refobjid, 0 AS refobjsubid, '' AS deptype WHERE false`,
    `CREATE TABLE fm.pgc.pg_opclass AS SELECT 0::BIGINT AS oid, '' AS opcname, 0::BIGINT AS opcnamespace, false AS opcdefault WHERE false`,
    `CREATE TABLE fm.pgc.pg_event_trigger AS SELECT 0::BIGINT AS oid, '' AS evtname WHERE false`,
    `CREATE TABLE fm.pgc.pg_auth_members AS SELECT 0::BIGINT AS roleid, 0::BIGINT AS member WHERE false`,
    `CREATE TABLE fm.infs.schemata AS SELECT ${lit(catalog)} AS catalog_name, nspname AS schema_name, ${lit(user)} AS schema_owner FROM
      fm.pgc.pg_namespace`,
    `CREATE TABLE fm.infs.tables AS SELECT ${lit(catalog)} AS table_catalog, n.nspname AS table_schema, c.relname AS table_name,
      'BASE TABLE' AS table_type, NULL::VARCHAR AS self_referencing_column_name, NULL::VARCHAR AS reference_generation, NULL::VARCHAR AS
        user_defined_type_catalog, NULL::VARCHAR AS user_defined_type_schema, NULL::VARCHAR AS user_defined_type_name, 'NO' AS
          is_insertable_into, 'NO' AS is_typed, NULL::VARCHAR AS commit_action FROM fm.pgc.pg_class c JOIN fm.pgc.pg_namespace n ON n.oid
            = c.relnamespace`,
    `CREATE TABLE fm.infs.columns AS SELECT ${lit(catalog)} AS table_catalog, table_schema, table_name, column_name, ordinal_position,
      NULL::VARCHAR AS column_default, 'YES' AS is_nullable, data_type, NULL::INTEGER AS character_maximum_length, NULL::INTEGER AS
        character_octet_length, numeric_precision::INTEGER AS numeric_precision, 10 AS numeric_precision_radix, numeric_scale::INTEGER AS
          numeric_scale, NULL::INTEGER AS datetime_precision, ${lit(catalog)} AS udt_catalog, 'pg_catalog' AS udt_schema, udt_name, 'NO'
            AS is_identity, 'NEVER' AS is_generated, 'NO' AS is_updatable
     FROM (VALUES ${infoColumns.length ? infoColumns.join(', ') : "('', '', '', 0, '', '', NULL, NULL)"}) v(table_schema, table_name,
       column_name, ordinal_position, data_type, udt_name, numeric_precision, numeric_scale) WHERE table_name <> ''`,
    `CREATE TABLE fm.infs.views AS ${none('table_catalog,table_schema,table_name,view_definition')}`,
    `CREATE TABLE fm.infs.table_constraints AS
      ${none('constraint_catalog,constraint_schema,constraint_name,table_catalog,table_schema,table_name,constraint_type')}`,
    `CREATE TABLE fm.infs.key_column_usage AS
      ${none('constraint_catalog,constraint_schema,constraint_name,table_catalog,table_schema,table_name,column_name,ordinal_position')}`,
    // Functions tools call, as macros of the mirror (calls are rewritten to fm.pgc.*).
    `CREATE MACRO fm.pgc.format_type(t, m) AS (SELECT CASE WHEN typname = 'numeric' AND m > 4 THEN 'numeric(' || ((m - 4) >> 16) || ',' ||
      ((m - 4) & 65535) || ')' ELSE fmt END FROM fm.pgc.pg_type WHERE oid = t)`,
    `CREATE MACRO fm.pgc.pg_get_userbyid(x) AS ${lit(user)}`,
    'CREATE MACRO fm.pgc.pg_table_is_visible(x) AS true',
    'CREATE MACRO fm.pgc.pg_type_is_visible(x) AS true',
    'CREATE MACRO fm.pgc.pg_function_is_visible(x) AS true',
    'CREATE MACRO fm.pgc.pg_is_other_temp_schema(x) AS false',
    'CREATE MACRO fm.pgc.pg_my_temp_schema() AS 0',
    'CREATE MACRO fm.pgc.pg_get_expr(a, b) AS NULL::VARCHAR, (a, b, c) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.pg_get_indexdef(a) AS NULL::VARCHAR, (a, b, c) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.pg_get_constraintdef(a) AS NULL::VARCHAR, (a, b) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.pg_get_viewdef(a) AS NULL::VARCHAR, (a, b) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.pg_get_partkeydef(a) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.pg_get_serial_sequence(a, b) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.pg_get_statisticsobjdef_columns(a) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.pg_get_function_result(a) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.pg_get_function_arguments(a) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.obj_description(a) AS NULL::VARCHAR, (a, b) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.col_description(a, b) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.shobj_description(a, b) AS NULL::VARCHAR',
    "CREATE MACRO fm.pgc.pg_encoding_to_char(a) AS 'UTF8'",
    'CREATE MACRO fm.pgc.has_table_privilege(a, b) AS true, (a, b, c) AS true',
    'CREATE MACRO fm.pgc.has_schema_privilege(a, b) AS true, (a, b, c) AS true',
    'CREATE MACRO fm.pgc.has_database_privilege(a, b) AS true, (a, b, c) AS true',
    'CREATE MACRO fm.pgc.has_column_privilege(a, b, c) AS true, (a, b, c, d) AS true',
    "CREATE MACRO fm.pgc.version() AS 'PostgreSQL 16.4 (Featherman, DuckDB) on x86_64-pc-linux-gnu, 64-bit'",
    "CREATE MACRO fm.pgc.current_schema() AS 'main'",
    "CREATE MACRO fm.pgc.current_schemas(b) AS ['main']",
    'CREATE MACRO fm.pgc.pg_backend_pid() AS 0',
    'CREATE MACRO fm.pgc.array_lower(a, d) AS 1',
    'CREATE MACRO fm.pgc.array_upper(a, d) AS len(a)',
    'CREATE MACRO fm.pgc.pg_relation_is_publishable(a) AS false',
    'CREATE MACRO fm.pgc.pg_total_relation_size(a) AS 0',
    'CREATE MACRO fm.pgc.pg_relation_size(a) AS 0',
    'CREATE MACRO fm.pgc.txid_current() AS 1',
    'CREATE MACRO fm.pgc.set_config(a, b, c) AS b',
    'CREATE MACRO fm.pgc.current_setting(a) AS (SELECT setting FROM fm.pgc.pg_settings WHERE lower(name) = lower(a)), (a, b) AS (SELECT ' +
      'setting FROM fm.pgc.pg_settings WHERE lower(name) = lower(a))',
    'CREATE MACRO fm.pgc.pg_is_in_recovery() AS false',
    "CREATE MACRO fm.pgc.quote_ident(a) AS '\"' || replace(a, '\"', '\"\"') || '\"'",
    'CREATE MACRO fm.pgc.pg_postmaster_start_time() AS NULL::TIMESTAMPTZ',
    'CREATE MACRO fm.pgc.pg_tablespace_location(a) AS NULL::VARCHAR',
    'CREATE MACRO fm.pgc.to_regclass(a) AS (SELECT oid FROM fm.pgc.pg_class WHERE relname = a)',
    'CREATE MACRO fm.pgc.to_regtype(a) AS (SELECT oid FROM fm.pgc.pg_type WHERE typname = a OR fmt = a)',
  );
  return ddl;
}

export class CatalogMirror {
  private readonly mirrors = new Map<string, Mirror>();
  constructor(private readonly log: { warn(o: object, m: string): void }) {}

  async query(session: Runner, sql: string): Promise<Rows> {
    const key = `${session.principal?.user}\u0000${session.principal?.uid ?? ''}\u0000${session.catalog}\u0000${session.pool ?? ''}`;
    let m = this.mirrors.get(key);
    if (!m || Date.now() - m.at > MIRROR_MS) {
      m = { at: Date.now(), connection: this.build(session) };
      this.mirrors.set(key, m);
      m.connection.catch(() => this.mirrors.delete(key));
    }
    const connection = await m.connection;
    let result;
    try {
      result = await connection.run(rewriteCatalogSql(sql));
    } catch (err) {
      // psql's \d asks about publications, policies, statistics, triggers and inheritance, none of
      // which a lake has: a query about them the mirror cannot run has no rows.
      if (/pg_(publication|policy|statistic_ext|trigger|inherits|rewrite|partitioned_table)\b/i.test(sql))
        return {
          columns: [],
          rows: (async function* () {
            /* none */
          })(),
        };
      const message = (err as Error).message.split('\n')[0] ?? 'catalog query failed';
      throw new PgError(/Parser/.test(message) ? '42601' : /Catalog|Binder/.test(message) ? '42P01' : '0A000', `catalog query: ${message}`);
    }
    const names = result.columnNames();
    const keys = result.deduplicatedColumnNames();
    const types = result.columnTypes();
    const columns = names.map((n, i) => column(n, keys[i]!, String(types[i])));
    const rows = (await result.getRowObjectsJson()) as Record<string, unknown>[];
    async function* all() {
      yield* rows;
    }
    void JsonDuckDBValueConverter;
    return { columns, rows: all() };
  }

  /** An in-memory DuckDB named like the catalog, with empty copies of the tables the principal may read. */
  private async build(session: Runner): Promise<DuckDBConnection> {
    // The sandbox lets a query list the lake's tables (not its schema names): tables are shown in main.
    // Listing needs the catalog-wide grant, which a principal allowed only some tables lacks: the
    // names are listed as the mirror, and each table is described below as the principal.
    const list = await session.run("SELECT DISTINCT table_name FROM ducklake_table_info('lake') ORDER BY 1", 'lister');
    const tables: { schema: string; table: string }[] = [];
    for await (const r of list.rows) tables.push({ schema: 'main', table: String(r.table_name) });
    const described: MirrorTable[] = [];
    for (const t of tables) {
      let rows: Rows;
      try {
        rows = await session.run(`SELECT * FROM ${quoteIdent(t.schema)}.${quoteIdent(t.table)} LIMIT 0`);
        for await (const _ of rows.rows) {
          /* none */
        }
      } catch (err) {
        // A table the principal may not read is not shown.
        if (err instanceof PgError && err.code === '42501') continue;
        this.log.warn({ table: `${t.schema}.${t.table}`, reason: (err as Error).message }, 'postgres wire: a table could not be described');
        continue;
      }
      described.push({ ...t, columns: rows.columns });
    }
    const db = await DuckDBInstance.create(':memory:');
    const c = await db.connect();
    await c.run(`ATTACH ':memory:' AS ${quoteIdent(session.catalog)}; USE ${quoteIdent(session.catalog)}`);
    for (const statement of catalogDdl(session.catalog, session.principal?.user ?? 'featherman', described)) await c.run(statement);
    return c;
  }
}
