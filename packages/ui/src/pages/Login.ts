/**
 * The sign-in page: a token (the admin token or an API token) posted to
 * `POST /admin/api/session`, which sets the session cookie; or, when the node
 * has an OpenID provider configured, "Sign in with <provider>", a link to the
 * provider's sign-in that comes back to the UI signed in. A refusal (wrong
 * token, too many attempts) is shown as the API gave it.
 */
import { html } from "htm/preact"
import { useEffect, useState } from "preact/hooks"
import { api, type LoginMethods, type SessionView } from "../api.ts"
import { ErrorBanner } from "../components/common.ts"

export const Login = ({
  returnTo,
  problem,
  onSignedIn
}: {
  returnTo: string
  problem: string | undefined
  onSignedIn: (who: SessionView) => void
}) => {
  const [token, setToken] = useState("")
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(problem === undefined ? undefined : new Error(problem))
  const [methods, setMethods] = useState<LoginMethods | undefined>(undefined)

  useEffect(() => {
    document.title = "Sign in · AsterForge admin"
    api.loginMethods().then(setMethods, setError)
  }, [])

  const submit = async (e: Event) => {
    e.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      onSignedIn(await api.signIn(token.trim()))
    } catch (failure) {
      setError(failure)
      setBusy(false)
    }
  }

  // The provider's sign-in comes back to the page the user was on, marked so the UI asks who signed in.
  const back = `/admin${returnTo === "/" ? "/" : returnTo}`
  const oidcHref = (url: string) => `${url}?redirect=${encodeURIComponent(`${back}${back.includes("?") ? "&" : "?"}signin=oidc`)}`

  return html`<main id="main" class="login">
    <h1>AsterForge admin</h1>
    <p class="muted">Sign in to see and act on tasks, queues, nodes, lanes and the audit log.</p>
    <${ErrorBanner} error=${error} what="Sign-in failed" />
    <form onSubmit=${submit} class="stack" aria-label="Sign in with a token">
      <label for="token">Admin token or API token</label>
      <input
        id="token"
        name="token"
        type="password"
        autocomplete="current-password"
        required
        value=${token}
        onInput=${(e: Event) => setToken((e.currentTarget as HTMLInputElement).value)}
      />
      <button type="submit" class="primary" disabled=${busy || token.trim() === ""}>${busy ? "Signing in…" : "Sign in"}</button>
    </form>
    ${
      methods?.oidc
        ? html`<p class="or">or</p>
            <a class="button" href=${oidcHref(methods.oidc.url)} data-testid="oidc">Sign in with ${methods.oidc.label}</a>`
        : null
    }
  </main>`
}
