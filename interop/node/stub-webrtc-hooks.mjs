// Module resolution hook: replace `webrtc-polyfill` (native, unavailable here) by stub-webrtc.mjs.
export async function resolve (specifier, context, nextResolve) {
  if (specifier === 'webrtc-polyfill') {
    return { url: new URL('./stub-webrtc.mjs', import.meta.url).href, shortCircuit: true }
  }
  return nextResolve(specifier, context)
}
