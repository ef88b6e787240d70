//! Light and dark: the system's choice unless the user picked one. The pick
//! lives in a cookie, so the server renders the page in it; with no pick, a
//! small script loaded in the page's head (`public/theme.js`) follows
//! `prefers-color-scheme` before anything is painted, so no page flashes
//! the wrong mode.

use leptos::prelude::*;

/// The cookie that keeps the user's pick.
pub const COOKIE: &str = "chat_theme";

/// The user's pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColourMode {
    System,
    Light,
    Dark,
}

impl ColourMode {
    /// The pick a `Cookie` header (or `document.cookie`) holds.
    pub fn from_cookies(cookies: &str) -> Self {
        let value = cookies
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value);
        match value {
            Some("light") => Self::Light,
            Some("dark") => Self::Dark,
            _ => Self::System,
        }
    }

    fn value(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }

    fn from_value(value: &str) -> Self {
        match value {
            "light" => Self::Light,
            "dark" => Self::Dark,
            _ => Self::System,
        }
    }

    /// What the server can put on `<html data-bs-theme>`: the pick, or
    /// light until the head script has asked the system.
    #[cfg(feature = "ssr")]
    pub fn rendered_theme(self) -> &'static str {
        match self {
            Self::Dark => "dark",
            Self::System | Self::Light => "light",
        }
    }
}

/// The pick this request (on the server) or this page (in the browser)
/// carries: both read the same cookie, so the picker hydrates as rendered.
pub fn current() -> ColourMode {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .and_then(|parts| {
                parts
                    .headers
                    .get(http::header::COOKIE)
                    .and_then(|value| value.to_str().ok())
                    .map(ColourMode::from_cookies)
            })
            .unwrap_or(ColourMode::System)
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        use wasm_bindgen::JsCast;
        document()
            .dyn_into::<web_sys::HtmlDocument>()
            .ok()
            .and_then(|doc| doc.cookie().ok())
            .map_or(ColourMode::System, |cookies| {
                ColourMode::from_cookies(&cookies)
            })
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        ColourMode::System
    }
}

/// Keeps `mode` (for 400 days, the most browsers allow) and shows it.
#[cfg(feature = "hydrate")]
fn choose(mode: ColourMode) {
    use wasm_bindgen::JsCast;
    let cookie = match mode {
        ColourMode::System => format!("{COOKIE}=; Path=/; Max-Age=0; SameSite=Lax"),
        picked => format!(
            "{COOKIE}={}; Path=/; Max-Age=34560000; SameSite=Lax",
            picked.value()
        ),
    };
    if let Ok(doc) = document().dyn_into::<web_sys::HtmlDocument>() {
        let _ = doc.set_cookie(&cookie);
    }
    let apply = js_sys::Reflect::get(&window(), &"chatApplyTheme".into())
        .ok()
        .and_then(|apply| apply.dyn_into::<js_sys::Function>().ok());
    if let Some(apply) = apply {
        let _ = apply.call0(&wasm_bindgen::JsValue::NULL);
    }
}

/// The picker: System, Light or Dark.
#[component]
pub fn ColourModePicker() -> impl IntoView {
    let mode = RwSignal::new(current());
    let on_change = move |ev: leptos::ev::Event| {
        let picked = ColourMode::from_value(&event_target_value(&ev));
        mode.set(picked);
        #[cfg(feature = "hydrate")]
        choose(picked);
    };
    let option = move |choice: ColourMode, label: &'static str| {
        view! {
            <option value=choice.value() selected=move || mode.get() == choice>
                {label}
            </option>
        }
    };
    view! {
        <select
            class="form-select form-select-sm colour-mode"
            aria-label="Colour mode"
            title="Colour mode"
            // Firefox would otherwise restore an older choice on reload.
            autocomplete="off"
            on:change=on_change
        >
            {option(ColourMode::System, "System")}
            {option(ColourMode::Light, "Light")}
            {option(ColourMode::Dark, "Dark")}
        </select>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pick_is_read_from_the_cookie_alone() {
        assert_eq!(ColourMode::from_cookies(""), ColourMode::System);
        assert_eq!(
            ColourMode::from_cookies("a=1; chat_theme=dark; b=2"),
            ColourMode::Dark
        );
        assert_eq!(
            ColourMode::from_cookies("chat_theme=light"),
            ColourMode::Light
        );
        assert_eq!(
            ColourMode::from_cookies("chat_theme=purple"),
            ColourMode::System
        );
        assert_eq!(
            ColourMode::from_cookies("not_chat_theme=dark"),
            ColourMode::System
        );
    }
}
