/**
 * The test projects. vitest 5 no longer reads this file by itself;
 * vitest.config.ts imports it into `test.projects`.
 */
export default [
  {
    test: {
      name: "unit",
      include: ["packages/*/test/unit/**/*.test.ts"]
    }
  },
  {
    test: {
      name: "integration",
      include: ["packages/*/test/integration/**/*.test.ts"],
      // Real processes and a real Postgres: generous, and files one at a time
      // so spawned nodes do not starve each other on a 2-core machine.
      testTimeout: 60_000,
      hookTimeout: 60_000,
      fileParallelism: false
    }
  }
]
