/**
 * A real IMAP server for tests: Debian's dovecot, started as a plain process
 * (`dovecot -F` with a config of our own) on a free loopback port, with one
 * passwd-file user and its maildir in a temp folder: no root paths, no system
 * service. `restart()` stops and starts it on the same port and mail; `stop()`
 * ends it and removes the folder.
 *
 * Running as root (CI), dovecot refuses uid 0 for mail access, so the mail
 * belongs to `nobody` and the login processes run as the package's
 * `dovenull`/`dovecot` users; as any other user, everything runs as that user.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { freePort } from "../../../runtime/test/support/kit.ts"

const binary = "/usr/sbin/dovecot"

export interface Dovecot {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly password: string
  /** Stops the server (SIGTERM, connections dropped) and starts it again on the same port and mail. */
  readonly restart: (options?: { readonly downMs?: number }) => Promise<{ readonly upAt: number }>
  readonly stop: () => Promise<void>
}

const userOf = (name: string) => {
  const line = Fs.readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`))
  return line === undefined ? undefined : { uid: Number(line.split(":")[2]), gid: Number(line.split(":")[3]) }
}

const config = (dir: string, port: number, root: boolean) => {
  const me = Os.userInfo().username
  const mailUser = root ? userOf("nobody")! : { uid: process.getuid!(), gid: process.getgid!() }
  return `
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = asterforge-test-${port}
log_path = ${dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
mail_max_userip_connections = 100
default_login_user = ${root ? "dovenull" : me}
default_internal_user = ${root ? "dovecot" : me}
default_internal_group = ${root ? "dovecot" : Os.userInfo().username}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=${mailUser.uid} gid=${mailUser.gid} home=${dir}/home/%u
}
mail_location = maildir:~/Maildir
service imap-login {
  chroot = ${root ? "login" : ""}
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot = ${root ? "empty" : ""}
}
`
}

/** The processes of the instance on `port` (titled `dovecot-asterforge-test-<port>/...`), by pid. */
const instanceProcesses = (port: number): ReadonlyArray<number> =>
  ChildProcess.execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" })
    .split("\n")
    .map((line) => /^\s*(\d+)\s+(.*)$/.exec(line))
    .flatMap((m) => (m !== null && m[2]!.startsWith(`dovecot-asterforge-test-${port}/`) ? [Number(m[1])] : []))

/** Resolves once the server answers with an IMAP greeting; rejects if the process exits first. */
const greeting = (port: number, child: ChildProcess.ChildProcess, log: () => string) =>
  new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 20_000
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`dovecot exited (${child.exitCode}):\n${log()}`))
      if (Date.now() > deadline) return reject(new Error(`dovecot did not answer on ${port}:\n${log()}`))
      const socket = Net.connect(port, "127.0.0.1")
      socket.once("data", (d: Buffer) => {
        socket.destroy()
        if (d.toString().startsWith("* OK")) resolve()
        else setTimeout(attempt, 50)
      })
      socket.once("error", () => setTimeout(attempt, 50))
    }
    attempt()
  })

/**
 * Starts dovecot for one test file. Fails (never skips) when it is not
 * installed, naming the package.
 */
export const start = async (): Promise<Dovecot> => {
  if (!Fs.existsSync(binary))
    throw new Error("dovecot is not installed: apt-get install dovecot-imapd (scripts/install-test-tools.sh does)")
  const root = process.getuid?.() === 0
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "asterforge-dovecot-"))
  // The mail user (nobody, when root) must reach its home through the temp folder.
  Fs.chmodSync(dir, 0o755)
  for (const sub of ["run", "state", "home"]) Fs.mkdirSync(Path.join(dir, sub))
  const user = "orders"
  const password = "imap-test-password"
  Fs.writeFileSync(Path.join(dir, "passwd"), `${user}:{PLAIN}${password}\n`)
  if (root) {
    const nobody = userOf("nobody")!
    Fs.chownSync(Path.join(dir, "home"), nobody.uid, nobody.gid)
  }
  const port = await freePort()
  const configPath = Path.join(dir, "dovecot.conf")
  Fs.writeFileSync(configPath, config(dir, port, root))
  const log = () => {
    try {
      return Fs.readFileSync(Path.join(dir, "dovecot.log"), "utf8")
    } catch {
      return ""
    }
  }
  let child: ChildProcess.ChildProcess
  const launch = async () => {
    child = ChildProcess.spawn(binary, ["-F", "-c", configPath], { stdio: ["ignore", "inherit", "inherit"] })
    await greeting(port, child, log)
  }
  // The master's children (login, imap, auth...) may outlive it by seconds, keeping their sessions
  // open; a service manager stops the whole group, and so does this: a restart drops every session.
  const halt = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      child.kill("SIGTERM")
      await exited
    }
    for (const pid of instanceProcesses(port)) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // already gone
      }
    }
  }
  await launch()
  return {
    host: "127.0.0.1",
    port,
    user,
    password,
    restart: async (options = {}) => {
      await halt()
      await new Promise((r) => setTimeout(r, options.downMs ?? 0))
      await launch()
      return { upAt: Date.now() }
    },
    stop: async () => {
      await halt()
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
