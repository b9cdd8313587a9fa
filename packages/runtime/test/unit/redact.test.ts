/**
 * redact: what must never be shown. `maskUrl` hides the password of a URL's
 * user-info and every credential-like query parameter, keeps the rest (user,
 * host, port, database, harmless parameters) readable, and shows nothing of a
 * URL it cannot take apart. `scrubTomlError` removes the value a real TOML
 * parse error quotes (the parser `sources.ts` uses) and names the key instead,
 * here and through `RuntimeConfig.resolve` on a file.
 */
import { Result } from "effect"
import * as Toml from "effect/encoding/Toml"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { maskUrl, scrubTomlError } from "../../src/internal/redact.ts"
import * as RuntimeConfig from "../../src/RuntimeConfig.ts"

describe("maskUrl", () => {
  // input, what is shown, the secrets that must not be
  const masked: ReadonlyArray<readonly [string, string, ReadonlyArray<string>]> = [
    ["postgres://app:s3cr3t-Pw@db.internal:5432/orders", "postgres://app:***@db.internal:5432/orders", ["s3cr3t-Pw"]],
    [
      "postgresql://app:s3cr3t-Pw@db.internal/orders?sslmode=require",
      "postgresql://app:***@db.internal/orders?sslmode=require",
      ["s3cr3t-Pw"]
    ],
    ["postgres://app:p%40ss%3Aw0rd@db/orders", "postgres://app:***@db/orders", ["p%40ss", "w0rd"]],
    ["postgres://app:p@ss@db/orders", "postgres://app:***@db/orders", ["p@ss", "p%40ss"]],
    ["postgres://:onlyAPassword@db/orders", "postgres://:***@db/orders", ["onlyAPassword"]],
    [
      "https://otel:c0llect0r-Pw@collector.example.com:4318/v1/traces",
      "https://otel:***@collector.example.com:4318/v1/traces",
      ["c0llect0r-Pw"]
    ],
    // Credential-like query parameters, libpq's and collectors'.
    ["postgres://app@db/orders?password=hunter2", "postgres://app@db/orders?password=***", ["hunter2"]],
    [
      "postgres://app@db/orders?sslmode=verify-full&sslpassword=k3yPass",
      "postgres://app@db/orders?sslmode=verify-full&sslpassword=***",
      ["k3yPass"]
    ],
    ["postgres://app@db/orders?PASSWORD=Upper1", "postgres://app@db/orders?PASSWORD=***", ["Upper1"]],
    ["postgres://app@db/orders?passwd=Pw1&pwd=Pw2&pass=Pw3", "postgres://app@db/orders?passwd=***&pwd=***&pass=***", ["Pw1", "Pw2", "Pw3"]],
    ["postgres://app@db/orders?Pass%77ord=EncodedName", "postgres://app@db/orders?Password=***", ["EncodedName"]],
    ["postgres://app@db/orders?password=First1&password=Second2", "postgres://app@db/orders?password=***", ["First1", "Second2"]],
    ["https://collector/v1/traces?token=T0k", "https://collector/v1/traces?token=***", ["T0k"]],
    ["https://collector/v1/traces?access_token=AcT", "https://collector/v1/traces?access_token=***", ["AcT"]],
    ["https://collector/v1/traces?secret=S3c", "https://collector/v1/traces?secret=***", ["S3c"]],
    ["https://collector/v1/traces?client_secret=CliS", "https://collector/v1/traces?client_secret=***", ["CliS"]],
    ["https://collector/v1/traces?key=K3y", "https://collector/v1/traces?key=***", ["K3y"]],
    ["https://collector/v1/traces?api_key=ApiK&apikey=ApiK2", "https://collector/v1/traces?api_key=***&apikey=***", ["ApiK"]],
    ["https://collector/v1/traces?X-Api-Key=HdrK", "https://collector/v1/traces?X-Api-Key=***", ["HdrK"]],
    [
      "https://collector/v1/traces?auth=Au7h&authorization=Bearer%20x",
      "https://collector/v1/traces?auth=***&authorization=***",
      ["Au7h", "Bearer"]
    ],
    ["https://collector/v1/traces?credentials=Cr3d", "https://collector/v1/traces?credentials=***", ["Cr3d"]],
    [
      "https://bucket/o?X-Amz-Signature=S1gn&session_token=Sess",
      "https://bucket/o?X-Amz-Signature=***&session_token=***",
      ["S1gn", "Sess"]
    ],
    // Both at once.
    [
      "postgres://app:UserInfoPw@db:6432/orders?application_name=worker&sslpassword=QueryPw&connect_timeout=5",
      "postgres://app:***@db:6432/orders?application_name=worker&sslpassword=***&connect_timeout=5",
      ["UserInfoPw", "QueryPw"]
    ]
  ]

  it.each(masked)("%s", (input, shown, secrets) => {
    const out = maskUrl(input)
    expect(out).toBe(shown)
    for (const secret of secrets) expect(out).not.toContain(secret)
  })

  it.each([
    "postgres://app@db.internal:5432/orders",
    "postgres://db.internal/orders?sslmode=require&application_name=asterforge",
    "postgres:///orders?host=/var/run/postgresql",
    "http://127.0.0.1:4318/",
    "https://collector.example.com/v1/traces?service=api"
  ])("leaves %s as it is (nothing secret in it)", (input) => {
    expect(maskUrl(input)).toBe(input)
  })

  it("keeps the user, host, port and database visible", () => {
    const out = maskUrl("postgres://orders_rw:Pw-9f2c@pg-primary.prod.internal:6432/orders_main?sslmode=require")
    for (const visible of ["orders_rw", "pg-primary.prod.internal", "6432", "/orders_main", "sslmode=require"])
      expect(out).toContain(visible)
  })

  // Text whose password the URL parser would not find: nothing of it is shown.
  it.each([
    ["not a URL at all", "definitely not a url with Pw-123", "Pw-123"],
    ["a broken host", "postgres://app:Br0kenPw@[::1/orders", "Br0kenPw"],
    ["no scheme: `user:pw@host/db` parses as an opaque path", "app:NoSchemePw@db.internal:5432/orders", "NoSchemePw"],
    ["one slash: the user-info lands in the path", "postgres:/app:OneSlashPw@db/orders", "OneSlashPw"],
    ["no slashes", "postgres:app:NoSlashPw@db/orders", "NoSlashPw"],
    ["a `/` in the password ends the authority early", "postgres://app:12/SlashPw@db/orders", "SlashPw"],
    ["a `#` in the password starts a fragment", "postgres://app:12#HashPw@db/orders", "HashPw"]
  ])("%s: shows nothing", (_label, input, secret) => {
    const out = maskUrl(input)
    expect(out).toBe("<unparseable url>")
    expect(out).not.toContain(secret)
  })
})

describe("scrubTomlError", () => {
  /** The real parse error for `source` (the parser `sources.ts` reads the config file with). */
  const parseError = (source: string): string => {
    const parsed = Toml.parse(source)
    if (Result.isSuccess(parsed)) throw new Error(`expected ${JSON.stringify(source)} not to parse`)
    return parsed.failure.message
  }

  // file content, the secret in it, what the scrubbed message says
  const rows: ReadonlyArray<readonly [string, string, string, string]> = [
    [
      "an unquoted token at the top",
      "admin_token = AdminTok_abc",
      "AdminTok_abc",
      "Invalid value at line 1, column 27 (key admin_token; the value is not shown)"
    ],
    [
      "an unquoted token in its table",
      "[security]\nadmin_token = AdminTok_abc\n",
      "AdminTok_abc",
      "Invalid value at line 2, column 27 (key security.admin_token; the value is not shown)"
    ],
    [
      "CRLF line endings",
      "[security]\r\nadmin_token = AdminTok_abc\r\n",
      "AdminTok_abc",
      "Invalid value at line 2, column 27 (key security.admin_token; the value is not shown)"
    ],
    [
      "further down, after other tables and comments",
      "[server]\nport = 3000\n\n[security]\n# rotate monthly\nadmin_token = AdminTok_abc\n",
      "AdminTok_abc",
      "Invalid value at line 6, column 27 (key security.admin_token; the value is not shown)"
    ],
    [
      "no spaces around =",
      "[security]\nadmin_token=AdminTok_abc\n",
      "AdminTok_abc",
      "Invalid value at line 2, column 25 (key security.admin_token; the value is not shown)"
    ],
    [
      "a token holding an apostrophe",
      "[security]\nadmin_token = it's_AdminTok_abc\n",
      "AdminTok_abc",
      "Invalid value at line 2, column 32 (key security.admin_token; the value is not shown)"
    ],
    [
      "a token holding quotes of both kinds",
      '[security]\nadmin_token = Ad"min\'Tok_abc"x\n',
      "Tok_abc",
      "Invalid value at line 2, column 31 (key security.admin_token; the value is not shown)"
    ],
    [
      "a token with a space: the parser quotes its first word",
      "[security]\nadmin_token = AdminTok abc\n",
      "AdminTok",
      "Invalid value at line 2, column 23 (key security.admin_token; the value is not shown)"
    ],
    [
      "a database URL without quotes",
      "[database]\nurl = postgres://app:UrlPw@db/orders\n",
      "UrlPw",
      "Invalid value at line 2, column 37 (key database.url; the value is not shown)"
    ],
    [
      "a numeric secret too large for an integer",
      "[security]\nencryption_key = 123456789012345678901234567890\n",
      "123456789012345678901234567890",
      "Integer out of range at line 2, column 48 (key security.encryption_key; the value is not shown)"
    ],
    [
      "a secret that looks like a date",
      "[security]\nadmin_token = 2024-13-45\n",
      "2024-13-45",
      "Invalid date-time at line 2, column 25 (key security.admin_token; the value is not shown)"
    ],
    [
      "a nested table",
      "[maintenance.retention]\nsecret_setting = Ret3nti0nSecret\n",
      "Ret3nti0nSecret",
      "Invalid value at line 2, column 33 (key maintenance.retention.secret_setting; the value is not shown)"
    ]
  ]

  it.each(rows)("%s: the value is gone, the line and key are named", (_label, source, secret, scrubbed) => {
    const raw = parseError(source)
    expect(raw).toContain(secret) // the parser does quote it: this row tests a real leak
    const out = scrubTomlError(source, raw)
    expect(out).not.toContain(secret)
    expect(out).toBe(scrubbed)
  })

  it("an error that quotes nothing keeps its text and gains the key", () => {
    const source = '[security]\nadmin_token = "AdminTok_abc\n'
    expect(scrubTomlError(source, parseError(source))).toBe(
      "Basic strings cannot contain newlines at line 2, column 28 (key security.admin_token; the value is not shown)"
    )
  })

  it("a line that is no `key = value` names no key", () => {
    const source = "[security]\nAdminTok_abc\n"
    const out = scrubTomlError(source, parseError(source))
    expect(out).not.toContain("AdminTok_abc")
    expect(out).toMatch(/^Expected at line 2, column \d+$/)
  })

  it("through RuntimeConfig.resolve: the malformed file is reported, its secret is not", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "af-redact-"))
    const file = Path.join(dir, "asterforge.toml")
    Fs.writeFileSync(file, "[server]\nport = 3000\n\n[security]\nadmin_token = AdminTok_abc\n")
    const r = RuntimeConfig.resolve({ file, env: {} })
    if (Result.isSuccess(r)) throw new Error("expected the configuration to be rejected")
    expect(r.failure.problems).toEqual([
      { key: file, message: "malformed TOML: Invalid value at line 5, column 27 (key security.admin_token; the value is not shown)" }
    ])
    expect(r.failure.message).not.toContain("AdminTok_abc")
  })
})
