import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// The web app lives in src/web and builds into dist/web, which the server serves. In `vite` dev
// mode the API and the WebSocket go to a server started with `npm start` (port 3000).
export default defineConfig({
  root: 'src/web',
  plugins: [react()],
  build: { outDir: '../../dist/web', emptyOutDir: true, sourcemap: true },
  server: {
    proxy: {
      '/api': 'http://localhost:3000',
      '/ws': { target: 'ws://localhost:3000', ws: true },
    },
  },
})
