/**
 * Orders: the bot's tables (its own migrations, tracked in
 * `asterforge_migrations_mail_order_bot`) and the statement that writes one.
 *
 * `mail_orders` has one row per order, unique on the mail's `message_id` (the
 * order's idempotency key); `mail_order_lines` its lines. An order and its
 * lines are written by one statement, so they commit together; a mail handled
 * again (a retry after the order was committed but before the mail was marked
 * read) finds its order and writes nothing.
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { ApplicationModule } from "@asterforge/runtime"
import type * as OrderMail from "./OrderMail.ts"

/** The bot's migrations. */
export const migrations: ApplicationModule.Migrations = {
  "0001_mail_orders": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE mail_orders (
        id              bigserial   PRIMARY KEY,
        message_id      text        NOT NULL UNIQUE,
        customer_name   text        NOT NULL,
        customer_email  text        NOT NULL,
        address         text        NOT NULL,
        mailbox         text        NOT NULL,
        uid_validity    bigint      NOT NULL,
        uid             bigint      NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now()
      )`
    yield* sql`
      CREATE TABLE mail_order_lines (
        order_id     bigint  NOT NULL REFERENCES mail_orders (id) ON DELETE CASCADE,
        line_no      integer NOT NULL,
        quantity     integer NOT NULL CHECK (quantity > 0),
        sku          text    NOT NULL,
        description  text,
        PRIMARY KEY (order_id, line_no)
      )`
  })
}

/** Where the order's mail was. */
export interface Origin {
  readonly messageId: string
  readonly mailbox: string
  readonly uidValidity: string
  readonly uid: number
}

/**
 * Writes the order and its lines in one statement; the order's id, and
 * whether this call created it (false: the mail's order already existed).
 */
export const insert = (sql: SqlClient.SqlClient, order: OrderMail.Order, origin: Origin) =>
  Effect.map(
    sql<{ id: string; created: boolean }>`
      WITH created AS (
        INSERT INTO mail_orders (message_id, customer_name, customer_email, address, mailbox, uid_validity, uid)
        VALUES (${origin.messageId}, ${order.customerName}, ${order.customerEmail}, ${order.address}, ${origin.mailbox},
                ${origin.uidValidity}::bigint, ${origin.uid})
        ON CONFLICT (message_id) DO NOTHING
        RETURNING id
      ),
      lines AS (
        INSERT INTO mail_order_lines (order_id, line_no, quantity, sku, description)
        SELECT c.id, l.ord, l.quantity, l.sku, l.description
        FROM created c,
             ROWS FROM (jsonb_to_recordset(${JSON.stringify(order.lines)}::jsonb) AS (quantity int, sku text, description text))
               WITH ORDINALITY AS l(quantity, sku, description, ord)
      )
      SELECT id::text, true AS created FROM created
      UNION ALL
      SELECT id::text, false FROM mail_orders WHERE message_id = ${origin.messageId} AND NOT EXISTS (SELECT 1 FROM created)`,
    (rows) => rows[0]!
  )
