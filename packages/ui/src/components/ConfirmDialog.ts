/**
 * A modal confirmation on the native `<dialog>` (focus moves into it and
 * stays there, Escape cancels): a title, what will happen, and Confirm /
 * Cancel. While `busy` the buttons are disabled; an `error` is shown inside.
 */
import { html } from "htm/preact"
import type { ComponentChildren } from "preact"
import { useEffect, useRef } from "preact/hooks"
import { ErrorBanner } from "./common.ts"

export interface ConfirmProps {
  readonly title: string
  readonly children: ComponentChildren
  readonly confirmLabel: string
  readonly danger?: boolean
  readonly busy?: boolean
  /** False while a preview is loading or when there is nothing to do. */
  readonly canConfirm?: boolean
  readonly error?: unknown
  readonly onConfirm: () => void
  readonly onClose: () => void
}

export const ConfirmDialog = (props: ConfirmProps) => {
  const ref = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const dialog = ref.current
    if (dialog !== null && !dialog.open) dialog.showModal()
    return () => dialog?.close()
  }, [])
  return html`<dialog
    ref=${ref}
    class="confirm"
    aria-labelledby="confirm-title"
    onCancel=${(e: Event) => {
      e.preventDefault()
      if (!props.busy) props.onClose()
    }}
  >
    <h2 id="confirm-title">${props.title}</h2>
    <div class="confirm-body">${props.children}</div>
    <${ErrorBanner} error=${props.error} what="Refused" />
    <div class="actions">
      <button type="button" onClick=${props.onClose} disabled=${props.busy}>Cancel</button>
      <button
        type="button"
        class=${props.danger ? "danger" : "primary"}
        onClick=${props.onConfirm}
        disabled=${props.busy || props.canConfirm === false}
        data-testid="confirm"
      >
        ${props.busy ? "Working…" : props.confirmLabel}
      </button>
    </div>
  </dialog>`
}
