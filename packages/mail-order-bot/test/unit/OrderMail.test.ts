/** The order e-mail format: what is an order, and every reason a mail is not. */
import { Result } from "effect"
import { describe, expect, it } from "vitest"
import * as OrderMail from "../../src/OrderMail.ts"

const body = (...lines: ReadonlyArray<string>) => lines.join("\r\n")

describe("OrderMail.parse", () => {
  it("reads the customer, the address and the lines, ignoring greetings and the signature", () => {
    const parsed = OrderMail.parse(
      body(
        "Hello, please send:",
        "",
        "Customer: Jane Doe <jane@example.com>",
        "address:  1 Main Street, 12345 Springfield ",
        "2 x SKU-123 Blue widget",
        "1X sku_9",
        "10 × A/B.7   spare part, large",
        "",
        "-- ",
        "3 x NOT-AN-ORDER-LINE"
      )
    )
    expect(parsed).toEqual(
      Result.succeed({
        customerName: "Jane Doe",
        customerEmail: "jane@example.com",
        address: "1 Main Street, 12345 Springfield",
        lines: [
          { quantity: 2, sku: "SKU-123", description: "Blue widget" },
          { quantity: 1, sku: "sku_9", description: null },
          { quantity: 10, sku: "A/B.7", description: "spare part, large" }
        ]
      })
    )
  })

  it("takes the e-mail address after the name without brackets too", () => {
    expect(
      OrderMail.parse(body("Customer: Bo Li bo@example.org", "Address: 2 Road", "1 x S")).pipe(
        Result.map((o) => [o.customerName, o.customerEmail])
      )
    ).toEqual(Result.succeed(["Bo Li", "bo@example.org"]))
  })

  it.each([
    ["no customer", body("Address: 1 Road", "1 x SKU-1"), ['no "Customer: <name> <email>" line']],
    ["no lines", body("Customer: Al <al@example.com>", "Address: 1 Road", "thanks!"), ['no order line "<quantity> x <sku>"']],
    ["a zero quantity", body("Customer: Al <al@example.com>", "Address: 1 Road", "0 x SKU-3"), ["line 3: quantity must be 1-10000, got 0"]],
    [
      "a customer without an address",
      body("Customer: Cy <not-an-address>", "Address: 4 Road", "1 x SKU-4"),
      ['line 1: Customer: "Cy <not-an-address>" has no valid e-mail address']
    ],
    [
      "a customer without a name",
      body("Customer: <cy@example.com>", "Address: 4 Road", "1 x SKU-4"),
      ['line 1: Customer: "<cy@example.com>" has no name before the e-mail address']
    ],
    ["an empty address", body("Customer: Al <al@example.com>", "Address:", "1 x S"), ["line 2: Address is empty"]],
    [
      "two customers",
      body("Customer: Al <al@example.com>", "Customer: Bo <bo@example.com>", "Address: 1 Road", "1 x S"),
      ["2 Customer lines; an order has one"]
    ],
    ["nothing at all", "", ['no "Customer: <name> <email>" line', 'no "Address: <one line>" line', 'no order line "<quantity> x <sku>"']]
  ])("refuses %s, listing every problem", (_what, text, problems) => {
    expect(OrderMail.parse(text)).toEqual(Result.fail(problems))
  })
})
