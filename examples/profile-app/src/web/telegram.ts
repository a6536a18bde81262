/** The part of `window.Telegram.WebApp` the app uses. */
export interface TelegramWebApp {
  initData: string
  colorScheme?: 'light' | 'dark'
  themeParams?: Record<string, string | undefined>
  ready?(): void
  expand?(): void
  onEvent?(event: 'themeChanged', handler: () => void): void
}

declare global {
  interface Window {
    Telegram?: { WebApp?: TelegramWebApp }
  }
}

const SCRIPT_URL = 'https://telegram.org/js/telegram-web-app.js'

/**
 * Telegram opens a Mini App with `#tgWebAppData=…` in the URL; only then is Telegram's script
 * loaded, so that a plain browser never waits on telegram.org.
 */
function openedByTelegram(): boolean {
  return /tgWebAppData=/.test(window.location.hash)
}

function loadScript(src: string): Promise<void> {
  return new Promise((resolve) => {
    const script = document.createElement('script')
    script.src = src
    script.onload = () => resolve()
    script.onerror = () => resolve()
    document.head.append(script)
  })
}

/** The Telegram WebApp object when the page runs inside Telegram with init data, else undefined. */
export async function telegramWebApp(): Promise<TelegramWebApp | undefined> {
  if (!window.Telegram?.WebApp && openedByTelegram()) await loadScript(SCRIPT_URL)
  const webApp = window.Telegram?.WebApp
  return webApp && webApp.initData ? webApp : undefined
}

const THEME_VARIABLES: Record<string, string> = {
  bg_color: '--bg',
  secondary_bg_color: '--card',
  text_color: '--text',
  hint_color: '--hint',
  link_color: '--link',
  button_color: '--accent',
  button_text_color: '--accent-text',
  destructive_text_color: '--danger',
}

/** Follows Telegram's theme: its colours become the page's CSS variables, now and on change. */
export function followTelegramTheme(webApp: TelegramWebApp): void {
  const apply = () => {
    const root = document.documentElement
    for (const [param, variable] of Object.entries(THEME_VARIABLES)) {
      const value = webApp.themeParams?.[param]
      if (value && /^#[0-9a-fA-F]{3,8}$/.test(value)) root.style.setProperty(variable, value)
    }
    if (webApp.colorScheme) root.dataset.scheme = webApp.colorScheme
  }
  apply()
  webApp.onEvent?.('themeChanged', apply)
  webApp.ready?.()
  webApp.expand?.()
}
