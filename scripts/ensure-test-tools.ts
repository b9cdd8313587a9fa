/**
 * `pnpm test` runs this first: the tests use Prometheus' own `promtool` to judge
 * /health/metrics, so install Debian's `prometheus` package when it is missing
 * and we are allowed to (root with apt-get, as on CI); otherwise say what to do.
 */
import * as ChildProcess from "node:child_process"

const has = (cmd: string) => ChildProcess.spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0

if (!has("promtool")) {
  if (process.getuid?.() === 0 && has("apt-get")) {
    console.log("[tests] installing promtool (Debian package prometheus)...")
    const run = (args: Array<string>) => {
      const r = ChildProcess.spawnSync("apt-get", args, { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } })
      if (r.status !== 0) process.exit(r.status ?? 1)
    }
    run(["update", "-qq"])
    run(["install", "-y", "-qq", "--no-install-recommends", "prometheus"])
  } else {
    console.error("[tests] promtool is required (install your distribution's `prometheus` package, e.g. `sudo apt-get install prometheus`)")
    process.exit(1)
  }
}
