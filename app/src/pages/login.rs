use leptos::prelude::*;

use crate::components::colour_mode::ColourModePicker;
use crate::protocol::MAX_NAME_CHARS;

/// `/`: pick a name. A plain HTML form, so it works before (and without) the WASM.
#[component]
pub fn LoginPage() -> impl IntoView {
    view! {
        <header class="container d-flex justify-content-end pt-3">
            <ColourModePicker/>
        </header>
        <LoginCard/>
    }
}

/// The login form. The server renders it again, with `error`, when a name is refused.
#[component]
pub fn LoginCard(
    /// Why the last name was refused.
    #[prop(optional, into)]
    error: Option<String>,
    /// What the user typed last time, put back in the field (as a value, never markup).
    #[prop(optional, into)]
    value: String,
) -> impl IntoView {
    let invalid = error.is_some();
    view! {
        <main class="container py-4">
            <div class="row justify-content-center">
                <div class="col-sm-10 col-md-7 col-lg-5">
                    <div class="card shadow-sm">
                        <div class="card-body p-4">
                            <h1 class="h3 mb-1">"Chat"</h1>
                            <p class="text-body-secondary mb-4">
                                "Pick a name and join the conversation."
                            </p>
                            {error
                                .map(|message| {
                                    view! {
                                        <div class="alert alert-danger" role="alert" id="login-error">
                                            {message}
                                        </div>
                                    }
                                })}
                            <form method="post" action="/api/login">
                                <label for="username" class="form-label">"Your name"</label>
                                <input
                                    id="username"
                                    name="username"
                                    type="text"
                                    class="form-control form-control-lg"
                                    class:is-invalid=invalid
                                    autocomplete="nickname"
                                    autofocus=true
                                    required=true
                                    maxlength=MAX_NAME_CHARS.to_string()
                                    aria-invalid=invalid.then_some("true")
                                    aria-describedby=if invalid {
                                        "login-error username-help"
                                    } else {
                                        "username-help"
                                    }
                                    value=value
                                />
                                <div id="username-help" class="form-text">
                                    "1 to 32 letters, digits, spaces, dots, dashes or underscores. A name already in use gets a number: John1."
                                </div>
                                <button type="submit" class="btn btn-primary btn-lg w-100 mt-3">
                                    "Join the chat"
                                </button>
                            </form>
                        </div>
                    </div>
                </div>
            </div>
        </main>
    }
    .into_any()
}

/// The whole login page as a static document (no WASM; the colour mode
/// script only): the answer to a refused form login.
#[cfg(feature = "ssr")]
pub fn login_error_document(error: String, typed: String) -> String {
    let owner = Owner::new();
    let body = owner.with(|| view! { <LoginCard error=error value=typed/> }.to_html());
    format!(
        "<!DOCTYPE html><html lang=\"en\" data-bs-theme=\"light\"><head><meta charset=\"utf-8\"/>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\
         <link rel=\"icon\" href=\"/favicon.ico\"/>\
         <script src=\"/theme.js\"></script>\
         <link rel=\"stylesheet\" href=\"/vendor/bootstrap.min.css\"/>\
         <link rel=\"stylesheet\" href=\"/pkg/{}.css\"/>\
         <title>Chat</title></head><body class=\"bg-body-tertiary\">{body}</body></html>",
        crate::OUTPUT_NAME
    )
}
