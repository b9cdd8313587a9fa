/**
 * Whether a production secret looks random enough: not a placeholder pasted
 * from an example (`changeme...`), not a repeating pattern (`abab...`,
 * `0123456789` over and over), not a keyboard or alphabet run (`qwerty...`,
 * `abcdef...`), and with enough randomness in what is left, judged by its
 * character distribution and by the steps between neighbours (`aaaabbbb...`
 * has many characters but few kinds of step). A random token of any alphabet
 * passes (32 random digits carry about 106 bits); what people type does not.
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

/** Runs people type: a stretch of 4 or more of one of these (or of its reverse) carries almost nothing. */
const runs = ["abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiop", "asdfghjkl", "zxcvbnm", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p"]
const runLength = 4

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

/** Shannon entropy of the distribution of `symbols`, times their number. */
const distribution = (symbols: ReadonlyArray<string | number>): number => {
  const counts = new Map<string | number, number>()
  for (const x of symbols) counts.set(x, (counts.get(x) ?? 0) + 1)
  let perSymbol = 0
  for (const n of counts.values()) {
    const p = n / symbols.length
    perSymbol -= p * Math.log2(p)
  }
  return perSymbol * symbols.length
}

/** Entropy of the character distribution, times the length: what a token's alphabet allows at most. */
export const distributionBits = (text: string): number => distribution([...text])

/**
 * A rough upper bound on a token's randomness: the smaller of its character
 * distribution's and its steps' (the differences between neighbouring
 * characters), so runs and sorted text (`abcd...`, `aaaabbbb...`) score low.
 */
export const estimatedBits = (text: string): number => {
  const codes = [...text].map((c) => c.codePointAt(0)!)
  const steps = codes.slice(1).map((c, i) => c - codes[i]!)
  return Math.min(distributionBits(text), distribution(steps) * (codes.length / Math.max(1, steps.length)))
}

/** Marks, in `covered`, every place `lower` holds a placeholder word or a typed run. */
const coverTyped = (lower: string): Array<boolean> => {
  const covered = lower.split("").map(() => false)
  const mark = (from: number, length: number) => {
    for (let i = from; i < from + length; i++) covered[i] = true
  }
  for (const word of placeholderWords) {
    for (let at = lower.indexOf(word); at >= 0; at = lower.indexOf(word, at + 1)) mark(at, word.length)
  }
  for (const run of [...runs, ...runs.map((r) => [...r].reverse().join(""))]) {
    for (let at = 0; at + runLength <= lower.length; at++) {
      let n = 0
      while (at + n < lower.length && run.includes(lower.slice(at, at + n + 1))) n++
      if (n >= runLength) {
        mark(at, n)
        at += n - 1
      }
    }
  }
  return covered
}

/** Why `token` is too weak for a production secret, or undefined when it looks random. */
export const weakness = (token: string): string | undefined => {
  const lower = token.toLowerCase()
  const p = period(lower)
  if (p !== undefined) return `it repeats a pattern of ${p} character${p === 1 ? "" : "s"}`
  const covered = coverTyped(lower)
  const rest = [...token].filter((_, i) => !covered[i]).join("")
  if (rest.length < 16) {
    return rest.length < token.length ? "it is made of placeholder words or keyboard runs" : `it is too short (${token.length} characters)`
  }
  const bits = estimatedBits(rest)
  if (bits < minimumBits) return `it carries too little randomness (about ${Math.floor(bits)} bits; at least ${minimumBits})`
  return undefined
}
