/**
 * Whether a production secret looks random enough: not a placeholder pasted
 * from an example (`changeme...`), not a repeating pattern (`abab...`,
 * `0123456789` over and over), and with enough randomness by its character
 * distribution. A random token of any alphabet passes (32 random digits carry
 * about 106 bits); what people type does not.
 */

/** Words people paste from examples. */
const placeholderWords = [
  "changeme",
  "change-me",
  "secret",
  "password",
  "admin",
  "token",
  "example",
  "placeholder",
  "xxx",
  "test",
  "default"
]

/** Below this estimate (bits) a token is too predictable for an admin credential. */
export const minimumBits = 64

/** The smallest p such that `text` is `text[0..p)` repeated (or cut short), if p is at most half the length. */
const period = (text: string): number | undefined => {
  for (let p = 1; p <= text.length / 2; p++) {
    let repeats = true
    for (let i = p; i < text.length && repeats; i++) repeats = text[i] === text[i % p]
    if (repeats) return p
  }
  return undefined
}

/** Shannon entropy of the character distribution, times the length: a rough upper bound on the token's randomness. */
export const estimatedBits = (text: string): number => {
  const counts = new Map<string, number>()
  for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1)
  let perChar = 0
  for (const n of counts.values()) {
    const p = n / text.length
    perChar -= p * Math.log2(p)
  }
  return perChar * text.length
}

/** Why `token` is too weak for a production secret, or undefined when it looks random. */
export const weakness = (token: string): string | undefined => {
  const lower = token.toLowerCase()
  const p = period(lower)
  if (p !== undefined) return `it repeats a pattern of ${p} character${p === 1 ? "" : "s"}`
  const rest = placeholderWords.reduce((t, w) => t.split(w).join(""), lower)
  if (rest.length < 16)
    return rest.length < lower.length ? "it is made of placeholder words" : `it is too short (${token.length} characters)`
  const bits = estimatedBits(token)
  if (bits < minimumBits) return `it carries too little randomness (about ${Math.floor(bits)} bits; at least ${minimumBits})`
  return undefined
}
