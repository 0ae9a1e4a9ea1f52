import './styles.css'
import { App } from './app.js'
import { clearToken, loadSession, storeToken, takeTokenFromUrl } from './session.js'
import { showSignIn } from './signin.js'

const root = document.getElementById('app')
takeTokenFromUrl()
start()

function start () {
  const session = loadSession()
  if (!session || session.expired) {
    if (session) clearToken()
    showSignIn(root, {
      expired: Boolean(session),
      onToken: (token) => {
        storeToken(token)
        start()
      }
    })
    return
  }
  const leave = () => {
    app.destroy()
    start()
  }
  const app = new App(root, session, {
    onSignOut: () => {
      clearToken()
      leave()
    },
    onExpired: leave
  })
  app.start()
}
