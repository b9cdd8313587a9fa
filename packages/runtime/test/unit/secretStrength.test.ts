/**
 * secretStrength: which production secrets look random. Random tokens of any
 * alphabet pass (all digits, hex, base64url); what people type does not:
 * repeating patterns (`abab...`, `changeme` over and over), placeholder words,
 * a few characters repeated, and tokens too short to carry 64 bits. The last
 * block checks the same judgement through the production `admin_token` rule.
 */
import { Result } from "effect"
import * as Crypto from "node:crypto"
import { describe, expect, it } from "vitest"
import * as SecretStrength from "../../src/internal/config/secretStrength.ts"
import * as RuntimeConfig from "../../src/RuntimeConfig.ts"

/** `length` digits from a CSPRNG. */
const randomDigits = (length: number): string => Array.from({ length }, () => String(Crypto.randomInt(10))).join("")

/** How many fresh random tokens each "accepted" row draws: a rule that refuses some random tokens fails here. */
const draws = 200

describe("SecretStrength.weakness accepts random tokens", () => {
  const generators: ReadonlyArray<readonly [string, () => string]> = [
    ["40 random digits", () => randomDigits(40)],
    ["32 random digits", () => randomDigits(32)],
    ["a random 32-byte token, base64url (`randomBytes(32).toString('base64url')`)", () => Crypto.randomBytes(32).toString("base64url")],
    ["a random 32-byte token, hex (`openssl rand -hex 32`)", () => Crypto.randomBytes(32).toString("hex")],
    ["a random 32-byte token, base64 (`openssl rand -base64 32`)", () => Crypto.randomBytes(32).toString("base64")],
    ["a random UUID", () => Crypto.randomUUID()]
  ]

  it.each(generators)("%s", (_label, generate) => {
    for (let i = 0; i < draws; i++) {
      const token = generate()
      expect({ token, weakness: SecretStrength.weakness(token) }).toEqual({ token, weakness: undefined })
    }
  })

  it.each([
    ["a fixed mixed-case token", "k3J9vQ2xZp7LmN4rT8wY1cF6hB0dS5gA"],
    ["a random token that happens to contain a placeholder word", "q8Zt-TEST-w4Lp9xK2mR7vN3cY6bH1dF5"]
  ])("%s", (_label, token) => {
    expect(SecretStrength.weakness(token)).toBeUndefined()
  })
})

describe("SecretStrength.weakness refuses what people type", () => {
  const rows: ReadonlyArray<readonly [string, string, RegExp]> = [
    // Repeating patterns, whatever their length.
    ["abab...", "ab".repeat(20), /^it repeats a pattern of 2 characters$/],
    ["abcabc...", "abc".repeat(11), /^it repeats a pattern of 3 characters$/],
    ["0123456789 over and over", "0123456789".repeat(4), /^it repeats a pattern of 10 characters$/],
    ["changeme over and over", "changeme".repeat(4), /^it repeats a pattern of 8 characters$/],
    ["ChangeMe in mixed case over and over", "ChangeMe" + "CHANGEME" + "changeme" + "cHANGEmE", /^it repeats a pattern of 8 characters$/],
    ["a pattern cut short at the end", "k3J9vQ2x".repeat(4) + "k3J", /^it repeats a pattern of 8 characters$/],
    // Repeated characters.
    ["one character 40 times", "x".repeat(40), /^it repeats a pattern of 1 character$/],
    ["one letter in both cases", "Aa".repeat(20), /^it repeats a pattern of 1 character$/],
    ["one character 39 times, then another", "a".repeat(39) + "b", /^it carries too little randomness \(about \d+ bits; at least 64\)$/],
    [
      "two runs of one character each",
      "a".repeat(16) + "b".repeat(16),
      /^it carries too little randomness \(about \d bits; at least 64\)$/
    ],
    ["three characters shuffled", "abcacbbacbcacabbcacbabcaabcbacab", /^it carries too little randomness/],
    // Placeholder words, pasted from examples.
    ["placeholder words run together", "changeme_admin_token_placeholder", /^it is made of placeholder words or keyboard runs$/],
    ["many placeholder words", "passwordsecrettokenadminexample1", /^it is made of placeholder words or keyboard runs$/],
    ["placeholder words with separators", "default-password-change-me-test!", /^it is made of placeholder words or keyboard runs$/],
    ["placeholder words in title case", "My-Secret-Token-Example-Xxx-Test", /^it is made of placeholder words or keyboard runs$/],
    ["CHANGEME and friends in capitals", "CHANGEME-PASSWORD-TOKEN-SECRET!!", /^it is made of placeholder words or keyboard runs$/],
    ["changeme", "changeme", /^it is made of placeholder words or keyboard runs$/],
    // Too short to carry enough randomness.
    ["empty", "", /^it is too short \(0 characters\)$/],
    ["a word", "short", /^it is too short \(5 characters\)$/],
    ["8 random characters", "k3J9vQ2x", /^it is too short \(8 characters\)$/],
    ["15 random characters", "k3J9vQ2xZp7LmN4", /^it is too short \(15 characters\)$/],
    ["18 random digits", "740291836650172493", /^it carries too little randomness/],
    // Typed runs: the alphabet, the keyboard, sorted characters.
    ["the alphabet and some digits", "abcdefghijklmnopqrstuvwxyz012345", /^it is made of placeholder words or keyboard runs$/],
    ["keyboard rows", "qwertyuiopasdfghjklzxcvbnm123456", /^it is made of placeholder words or keyboard runs$/],
    ["keyboard rows backwards", "poiuytrewqlkjhgfdsamnbvcxz987654", /^it is made of placeholder words or keyboard runs$/],
    ["sorted runs of characters", "aaaabbbbccccddddeeeeffffgggghhhh", /^it carries too little randomness/],
    ["a phrase of placeholder words", "CHANGEME-IN-PRODUCTION-PASSWORD!", /^it carries too little randomness/]
  ]

  it.each(rows)("%s", (_label, token, reason) => {
    expect(SecretStrength.weakness(token)).toMatch(reason)
  })

  it("random tokens shorter than 16 characters are refused, whatever their alphabet", () => {
    for (let i = 0; i < draws; i++) {
      const token = Crypto.randomBytes(12).toString("base64url").slice(0, 15)
      expect({ token, weakness: SecretStrength.weakness(token) }).toEqual({ token, weakness: expect.any(String) })
    }
  })
})

describe("SecretStrength.estimatedBits", () => {
  it.each([
    ["", 0],
    ["aaaa", 0],
    ["abcd", 8],
    ["aabb", 4],
    ["0123456789abcdef", 64]
  ] as const)("%j carries %d bits by its character distribution", (token, bits) => {
    expect(SecretStrength.distributionBits(token)).toBeCloseTo(bits, 9)
  })

  it.each([
    ["abcdefghijklmnop", 0],
    ["aaaabbbbccccdddd", 12]
  ] as const)("%j carries about %d bits by its steps, whatever its alphabet", (token, bits) => {
    expect(Math.round(SecretStrength.estimatedBits(token))).toBe(bits)
  })

  it("the bar is 64 bits", () => {
    expect(SecretStrength.minimumBits).toBe(64)
  })
})

describe("the production admin_token rule uses the same judgement", () => {
  const resolve = (token: string) =>
    RuntimeConfig.resolve({
      file: "/nonexistent/asterforge.toml",
      fileRequired: false,
      env: { NODE_ENV: "production", ASTERFORGE_SECURITY_ADMIN_TOKEN: token }
    })
  const problems = (token: string) => {
    const r = resolve(token)
    return Result.isFailure(r) ? r.failure.problems : []
  }

  it.each([
    ["40 random digits", randomDigits(40)],
    ["a random base64url 32-byte token", Crypto.randomBytes(32).toString("base64url")]
  ])("accepts %s", (_label, token) => {
    expect(problems(token)).toEqual([])
  })

  it.each([
    ["abab...", "ab".repeat(20), "it repeats a pattern of 2 characters"],
    ["changeme...", "changeme".repeat(5), "it repeats a pattern of 8 characters"],
    ["placeholder words", "changeme_admin_token_placeholder", "it is made of placeholder words"],
    ["repeated characters", "a".repeat(39) + "b", "it carries too little randomness"],
    ["31 random digits (under 32 characters)", randomDigits(31), "must be at least 32 characters in production (got 31)"]
  ])("refuses %s, saying why, without echoing it", (_label, token, reason) => {
    const found = problems(token)
    expect(found).toEqual([{ key: "security.admin_token", message: expect.stringContaining(reason) }])
    expect(JSON.stringify(found)).not.toContain(token)
  })
})
