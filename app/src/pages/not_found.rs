use leptos::prelude::*;

/// Any path the router does not know.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="container py-5 text-center">
            <h1 class="h3">"Page not found"</h1>
            <a href="/">"Back to the chat"</a>
        </main>
    }
}
