/**
 * What must never reach a log line, a `config check` screen or an audit row:
 * passwords in URLs (the user-info part and credential-like query
 * parameters), and values quoted back by a parse error (an unquoted secret in
 * a TOML file shows up in the parser's message).
 */

/** Query parameters that carry credentials (libpq's `password`, `sslpassword`; API keys and tokens of collectors). */
const sensitiveParam = /pass(word|wd)?|pwd|secret|token|key|auth|credential|signature|session/i

/** The URL with its password and credential-like query values masked (`***`); unparseable text is not shown at all. */
export const maskUrl = (text: string): string => {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return "<unparseable url>"
  }
  // An `@` but no user-info parsed (`user:pw@host/db` without a scheme, `postgres:/u:pw@h`, a `/` or `#`
  // in a password): the credentials are where the parser does not look for them, so show nothing.
  if (text.includes("@") && url.username === "" && url.password === "") return "<unparseable url>"
  if (url.password !== "") url.password = "***"
  for (const name of [...url.searchParams.keys()]) {
    if (sensitiveParam.test(name)) url.searchParams.set(name, "***")
  }
  // URL encodes the asterisks of a masked query value; show them as written.
  return url.toString().replace(/%2A%2A%2A/g, "***")
}

/**
 * A TOML parse error without the text it quotes (`Invalid value 'AdminTok_abc'
 * at line 2` -> `invalid value at line 2`), with the key on that line named
 * instead, so an unquoted secret is never echoed.
 */
export const scrubTomlError = (source: string, message: string): string => {
  // Greedy, first quote to last: the quoted token may itself hold quotes (`it's_a_secret`).
  const scrubbed = message
    .replace(/'.*'/g, "")
    .replace(/".*"/g, "")
    .replace(/\s{2,}/g, " ")
    .trim()
  const line = /line (\d+)/.exec(message)
  if (line === null) return scrubbed
  const lines = source.split(/\r?\n/)
  const index = Number(line[1]) - 1
  const key = /^\s*([A-Za-z0-9_.-]+)\s*=/.exec(lines[index] ?? "")?.[1]
  if (key === undefined) return scrubbed
  const table = lines
    .slice(0, index)
    .reverse()
    .map((l) => /^\s*\[+\s*([A-Za-z0-9_.-]+)\s*\]+/.exec(l)?.[1])
    .find((t) => t !== undefined)
  return `${scrubbed} (key ${table === undefined ? key : `${table}.${key}`}; the value is not shown)`
}
