/** "Did you mean" hints for misspelt configuration keys, sections and variables. */

const levenshtein = (a: string, b: string): number => {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!
    dp[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!
      dp[j] = a[i - 1] === b[j - 1] ? prev : 1 + Math.min(prev, dp[j]!, dp[j - 1]!)
      prev = tmp
    }
  }
  return dp[b.length]!
}

/**
 * ` (did you mean "x"?)` for the closest candidate within a few edits, or for
 * a candidate the word is a fragment of ("mode" for "start_mode"); "" otherwise.
 */
export const didYouMean = (word: string, candidates: ReadonlyArray<string>): string => {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase())
    if (d < bestDistance) {
      bestDistance = d
      best = c
    }
  }
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3))) return ` (did you mean "${best}"?)`
  const partial = word.length >= 3 ? candidates.find((c) => c.split(/[._]/).includes(word.toLowerCase())) : undefined
  return partial !== undefined ? ` (did you mean "${partial}"?)` : ""
}
