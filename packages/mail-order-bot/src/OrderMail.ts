/**
 * OrderMail: the order e-mail format, parsed (pure).
 *
 * A plain-text body:
 *
 * ```
 * Hello, please send:
 *
 * Customer: Jane Doe <jane@example.com>
 * Address: 1 Main Street, 12345 Springfield
 * 2 x SKU-123 Blue widget
 * 1 x SKU-9
 *
 * --
 * Jane
 * ```
 *
 * - `Customer: <name> <email>` (the e-mail in angle brackets or after the name),
 *   exactly once;
 * - `Address: <one line>`, exactly once;
 * - one or more order lines `<quantity> x <sku> [description]` (quantity
 *   1-10000; `x`, `X` or `×`; the SKU letters, digits, `.`, `_`, `-`, `/`);
 * - keys are case-insensitive; other lines (greetings) are ignored, and so is
 *   everything after a signature line `-- `.
 *
 * The message's `Message-ID` is the order's idempotency key; it comes from the
 * envelope, not from here. Anything else is not an order: every problem is
 * listed.
 *
 * @since 0.3.0
 */
import { Result } from "effect"

/** @category models */
export interface OrderLine {
  readonly quantity: number
  readonly sku: string
  readonly description: string | null
}

/** @category models */
export interface Order {
  readonly customerName: string
  readonly customerEmail: string
  readonly address: string
  readonly lines: ReadonlyArray<OrderLine>
}

const maxQuantity = 10_000
const maxLines = 500
const email = /^[^\s<>@]+@[^\s<>@]+\.[^\s<>@]+$/
const keyed = /^(customer|address)\s*:\s*(.*)$/i
const orderLine = /^(\d+)\s*[xX×]\s*([A-Za-z0-9][A-Za-z0-9._/-]*)(?:\s+(.*))?$/

/** `Jane Doe <jane@example.com>` or `Jane Doe jane@example.com`: the name and the address, or a problem. */
const customerOf = (value: string): Result.Result<{ name: string; email: string }, string> => {
  const bracketed = /^(.*?)\s*<([^<>]*)>\s*$/.exec(value)
  const [name, address] = bracketed ? [bracketed[1]!, bracketed[2]!] : [value.replace(/\s*\S+$/, ""), value.split(/\s+/).pop() ?? ""]
  if (!email.test(address.trim())) return Result.fail(`Customer: "${value}" has no valid e-mail address`)
  if (name.trim() === "") return Result.fail(`Customer: "${value}" has no name before the e-mail address`)
  return Result.succeed({ name: name.trim(), email: address.trim() })
}

/**
 * Parses an order mail's text body; the failure lists every problem.
 *
 * @category parsing
 */
export const parse = (text: string): Result.Result<Order, ReadonlyArray<string>> => {
  const problems: Array<string> = []
  const customers: Array<{ name: string; email: string }> = []
  const addresses: Array<string> = []
  const lines: Array<OrderLine> = []
  for (const [index, raw] of text.replace(/\r\n?/g, "\n").split("\n").entries()) {
    if (raw === "-- " || raw === "--") break
    const line = raw.trim()
    const key = keyed.exec(line)
    if (key !== null) {
      const value = key[2]!.trim()
      if (key[1]!.toLowerCase() === "address") {
        if (value === "") problems.push(`line ${index + 1}: Address is empty`)
        else addresses.push(value)
      } else {
        const customer = customerOf(value)
        if (Result.isFailure(customer)) problems.push(`line ${index + 1}: ${customer.failure}`)
        else customers.push(customer.success)
      }
      continue
    }
    const item = orderLine.exec(line)
    if (item === null) continue
    const quantity = Number(item[1])
    if (quantity < 1 || quantity > maxQuantity) problems.push(`line ${index + 1}: quantity must be 1-${maxQuantity}, got ${item[1]}`)
    else lines.push({ quantity, sku: item[2]!, description: item[3]?.trim() || null })
  }
  if (customers.length === 0 && !problems.some((p) => p.includes("Customer"))) problems.push('no "Customer: <name> <email>" line')
  if (customers.length > 1) problems.push(`${customers.length} Customer lines; an order has one`)
  if (addresses.length === 0 && !problems.some((p) => p.includes("Address"))) problems.push('no "Address: <one line>" line')
  if (addresses.length > 1) problems.push(`${addresses.length} Address lines; an order has one`)
  if (lines.length === 0 && !problems.some((p) => p.includes("quantity"))) problems.push('no order line "<quantity> x <sku>"')
  if (lines.length > maxLines) problems.push(`${lines.length} order lines; at most ${maxLines}`)
  if (problems.length > 0) return Result.fail(problems)
  return Result.succeed({ customerName: customers[0]!.name, customerEmail: customers[0]!.email, address: addresses[0]!, lines })
}
