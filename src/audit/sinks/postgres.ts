// PostgreSQL: one row per decision, query fields in indexed columns and the whole record as
// jsonb. Inserts are idempotent on (replica, seq), so a replay after a crash adds nothing.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { lineCount } from './json-lines.js';
import { BatchTooLargeError, type AuditSink } from './types.js';

export const DECISIONS_TABLE = 'trustgate_decisions';

const MIGRATION = `
CREATE TABLE IF NOT EXISTS ${DECISIONS_TABLE} (
  replica      text        NOT NULL,
  seq          bigint      NOT NULL,
  decision_id  uuid        NOT NULL,
  time         timestamptz NOT NULL,
  namespace    text        NOT NULL,
  username     text        NOT NULL,
  kind         text        NOT NULL,
  name         text        NOT NULL,
  operation    text        NOT NULL,
  allowed      boolean     NOT NULL,
  dry_run      boolean     NOT NULL,
  policies     text[]      NOT NULL,
  images       text[]      NOT NULL,
  record       jsonb       NOT NULL,
  PRIMARY KEY (replica, seq)
);
CREATE INDEX IF NOT EXISTS ${DECISIONS_TABLE}_time ON ${DECISIONS_TABLE} (time);
CREATE INDEX IF NOT EXISTS ${DECISIONS_TABLE}_namespace ON ${DECISIONS_TABLE} (namespace, time);
CREATE INDEX IF NOT EXISTS ${DECISIONS_TABLE}_username ON ${DECISIONS_TABLE} (username, time);
CREATE INDEX IF NOT EXISTS ${DECISIONS_TABLE}_denied ON ${DECISIONS_TABLE} (time) WHERE NOT allowed;
CREATE INDEX IF NOT EXISTS ${DECISIONS_TABLE}_decision ON ${DECISIONS_TABLE} (decision_id);
CREATE INDEX IF NOT EXISTS ${DECISIONS_TABLE}_policies ON ${DECISIONS_TABLE} USING gin (policies);
CREATE INDEX IF NOT EXISTS ${DECISIONS_TABLE}_images ON ${DECISIONS_TABLE} USING gin (images);
`;

/** The URL without its password, for logs and metrics. */
export function redactedURL(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/** SQLSTATEs of a batch too big for one statement: canceled by statement_timeout, or over a limit */
const STATEMENT_TIMEOUT = '57014';
const PROGRAM_LIMIT_EXCEEDED = '54000';

export class PostgresSink implements AuditSink {
  readonly id: string;
  readonly name: string;
  #pool: pg.Pool;
  #migrated?: Promise<void>;

  constructor(url: string, options: { statementTimeoutMs?: number } = {}) {
    const u = new URL(url);
    this.id = `postgres-${createHash('sha256').update(`${u.host}${u.pathname}${u.username}`).digest('hex').slice(0, 12)}`;
    this.name = redactedURL(url);
    this.#pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 5000, statement_timeout: options.statementTimeoutMs ?? 30_000 });
    this.#pool.on('error', () => undefined); // idle-client errors surface on the next send
  }

  #migrate(): Promise<void> {
    this.#migrated ??= this.#pool.query(MIGRATION).then(() => undefined, (err) => {
      this.#migrated = undefined;
      throw err;
    });
    return this.#migrated;
  }

  send(lines: readonly string[]): Promise<void> {
    return this.sendJsonLines(Buffer.from(`${lines.join('\n')}\n`));
  }

  /** The spool's JSON lines go as they are, one parameter; PostgreSQL makes them an array. */
  async sendJsonLines(bytes: Buffer): Promise<void> {
    await this.#migrate();
    try {
      await this.#insert(bytes);
    } catch (err) {
      // a batch that outlasts the statement timeout, or outgrows a limit, is cut in two by the
      // pipeline; retried whole it would fail the same way for good (the statement is atomic:
      // nothing of it was stored)
      const code = (err as { code?: string }).code;
      if (code === STATEMENT_TIMEOUT || code === PROGRAM_LIMIT_EXCEEDED) {
        throw new BatchTooLargeError(`${this.name}: ${lineCount(bytes)} records in one statement: ${(err as Error).message}`);
      }
      throw err;
    }
  }

  async #insert(jsonLines: Buffer): Promise<void> {
    // one statement per batch; the columns are derived from the record itself, so they cannot
    // disagree. The lines go as bytes (a Buffer is a binary bytea parameter): PostgreSQL decodes
    // them and joins them into a JSON array, so no string of the batch is made here.
    await this.#pool.query(
      `INSERT INTO ${DECISIONS_TABLE} (replica, seq, decision_id, time, namespace, username, kind, name, operation, allowed, dry_run, policies, images, record)
       SELECT r->>'replica', (r->>'seq')::bigint, (r->>'decisionId')::uuid, (r->>'time')::timestamptz,
              r->'request'->>'namespace', r->'request'->'userInfo'->>'username', r->'request'->'kind'->>'kind',
              r->'request'->>'name', r->'request'->>'operation', (r->>'allowed')::boolean, (r->'request'->>'dryRun')::boolean,
              ARRAY(SELECT jsonb_array_elements(r->'policies')->>'name'),
              ARRAY(SELECT coalesce(i->>'digest', i->>'ref') FROM jsonb_array_elements(r->'images') AS i),
              r
       FROM jsonb_array_elements(('[' || rtrim(replace(convert_from($1::bytea, 'UTF8'), E'\n', ','), ',') || ']')::jsonb) AS r
       ON CONFLICT (replica, seq) DO NOTHING`,
      [jsonLines],
    );
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

/** Records from the table in chain order, optionally filtered in SQL on the indexed columns. */
export async function readPostgresRecords(url: string, filter: {
  since?: Date; until?: Date; namespace?: string; user?: string; policy?: string; allowed?: boolean; image?: string; exception?: string; endpoint?: string;
} = {}): Promise<{ position: number; record: import('../record.js').DecisionRecord }[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (sql: string, v: unknown) => {
      args.push(v);
      where.push(sql.replaceAll('?', `$${args.length}`));
    };
    if (filter.since) add('time >= ?', filter.since);
    if (filter.until) add('time <= ?', filter.until);
    if (filter.namespace !== undefined) add('namespace = ?', filter.namespace);
    if (filter.user !== undefined) add('username = ?', filter.user);
    // a ValidatingAdmissionPolicy's name finds it under each of its bindings (policy/binding)
    if (filter.policy !== undefined) add("(policies @> ARRAY[?]::text[] OR EXISTS (SELECT 1 FROM unnest(policies) AS p WHERE starts_with(p, ? || '/')))", filter.policy);
    if (filter.allowed !== undefined) add('allowed = ?', filter.allowed);
    if (filter.image !== undefined) add('images @> ARRAY[?]::text[]', filter.image);
    if (filter.endpoint !== undefined) add("record->>'endpoint' = ?", filter.endpoint);
    // rare and read by auditors, not indexed: jsonb containment over the record
    if (filter.exception !== undefined) add('record @> ?::jsonb', JSON.stringify({ policies: [{ exceptions: [{ name: filter.exception }] }] }));
    const sql = `SELECT record FROM ${DECISIONS_TABLE}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY replica, seq`;
    const { rows } = await client.query<{ record: import('../record.js').DecisionRecord }>(sql, args);
    return rows.map((r, i) => ({ position: i + 1, record: r.record }));
  } finally {
    await client.end();
  }
}
