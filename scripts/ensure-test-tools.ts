/**
 * `pnpm test` runs this first: the tests judge /health/metrics with Prometheus'
 * own `promtool` and scrape it with a real `prometheus` server, so install
 * Debian's `prometheus` package (it ships both) when either is missing and we
 * are allowed to (root with apt-get, as on CI); otherwise say what to do.
 */
import * as ChildProcess from "node:child_process"

const has = (cmd: string) => ChildProcess.spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0

if (!has("promtool") || !has("prometheus")) {
  if (process.getuid?.() === 0 && has("apt-get")) {
    console.log("[tests] installing prometheus and promtool (Debian package prometheus)...")
    const run = (args: Array<string>) => {
      const r = ChildProcess.spawnSync("apt-get", args, { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } })
      if (r.status !== 0) process.exit(r.status ?? 1)
    }
    run(["update", "-qq"])
    run(["install", "-y", "-qq", "--no-install-recommends", "prometheus"])
  } else {
    console.error("[tests] prometheus and promtool are required (install your distribution's `prometheus` package, e.g. `sudo apt-get install prometheus`)")
    process.exit(1)
  }
}
