//! Offline use: registers the service worker (`public/service-worker.js`), which caches the
//! app and its demo data on the first visit, and says in the header when that is done, so
//! a workshop knows when the network can go.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// Starts caching the app for offline use; `ready` turns true once every file of this build
/// is cached (the worker is active). Browsers offer service workers only on https pages
/// and on localhost: elsewhere nothing happens and the app simply needs the network.
pub fn register_service_worker(ready: RwSignal<bool>) {
    let window = window();
    let navigator = window.navigator();
    let secure = js_sys::Reflect::get(&window, &"isSecureContext".into())
        .ok()
        .and_then(|value| value.as_bool())
        .unwrap_or(false);
    let has_service_workers =
        js_sys::Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false);
    if !secure || !has_service_workers {
        return;
    }
    let container = navigator.service_worker();
    let registered = container.register("service-worker.js");
    let ready_promise = container.ready().ok();
    leptos::task::spawn_local(async move {
        // A failed registration (the file missing in a development build, say) leaves the
        // app working online; it is not an error worth a console line.
        if wasm_bindgen_futures::JsFuture::from(registered)
            .await
            .is_err()
        {
            return;
        }
        if let Some(promise) = ready_promise
            && let Ok(registration) = wasm_bindgen_futures::JsFuture::from(promise).await
            && registration
                .dyn_into::<web_sys::ServiceWorkerRegistration>()
                .is_ok_and(|registration| registration.active().is_some())
        {
            ready.set(true);
        }
    });
}

/// "Works offline" in the header once the app is cached.
#[component]
pub fn OfflineStatus(ready: RwSignal<bool>) -> impl IntoView {
    view! {
        <Show when=move || ready.get()>
            <span class="offline-ready" data-testid="offline-ready"
                title="This browser has cached the app and its demo data: reload it with the network off and it still opens, scores the demo and scores files you drop in.">
                "Works offline"
            </span>
        </Show>
    }
}
