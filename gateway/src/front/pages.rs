//! The few pages Orca itself serves: status pages, the login form, the waiting page and the
//! index of images. Plain HTML with inline CSS, no external assets (nothing to fetch while a
//! container starts); every value from a client, a plugin or a label is escaped.

use std::fmt::Write as _;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;\
padding:0 1rem;color:#222}h1{font-size:1.4rem}code{background:#eee;padding:0 .2rem}\
.muted{color:#666}form p{margin:.6rem 0}input{font-size:1rem;padding:.3rem}\
li{margin:.3rem 0}#phase{font-weight:600}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(title)
    )
}

/// A status page: a heading and one explanatory paragraph.
pub fn status(code: u16, title: &str, detail: &str) -> String {
    page(
        title,
        &format!(
            "<h1>{}</h1><p>{}</p><p class=\"muted\">{code} · orca</p>",
            escape(title),
            escape(detail)
        ),
    )
}

/// The login form, posting back to the gateway; `back` is where to go after it.
pub fn login(back: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p role=\"alert\"><strong>{}</strong></p>", escape(e)))
        .unwrap_or_default();
    page(
        "Log in",
        &format!(
            "<h1>Log in</h1>{error}<form method=\"post\" action=\"/.orca/login\">\
             <input type=\"hidden\" name=\"back\" value=\"{}\">\
             <p><label>User <input name=\"user\" autocomplete=\"username\" autofocus required></label></p>\
             <p><label>Password <input name=\"password\" type=\"password\" \
             autocomplete=\"current-password\" required></label></p>\
             <p><button type=\"submit\">Log in</button></p></form>",
            escape(back)
        ),
    )
}

/// The page a browser sees while its container starts: it shows each phase as it happens
/// (long-polling `/.orca/wait`) and reloads the page when the container is ready.
pub fn waiting(image: &str, phase: &str) -> String {
    page(
        &format!("Starting {image}"),
        &format!(
            "<h1>Starting <code>{0}</code></h1>\
             <p>Your container is on its way: <span id=\"phase\">{1}</span></p>\
             <ol id=\"log\" class=\"muted\"><li>{1}</li></ol>\
             <script>\
             const seen=['{2}'];\
             async function poll(last){{\
               try{{\
                 const r=await fetch('/.orca/wait?after='+encodeURIComponent(last),{{cache:'no-store'}});\
                 const s=await r.json();\
                 document.getElementById('phase').textContent=s.text;\
                 if(!seen.includes(s.phase)){{seen.push(s.phase);\
                   const li=document.createElement('li');li.textContent=s.text;\
                   document.getElementById('log').appendChild(li);}}\
                 if(s.phase==='ready'){{location.reload();return;}}\
                 if(s.phase==='failed'){{return;}}\
                 poll(s.phase);\
               }}catch(e){{setTimeout(()=>poll(last),1000);}}\
             }}\
             poll('{2}');\
             </script>",
            escape(image),
            escape(phase_text(phase)),
            escape(phase)
        ),
    )
}

/// Words for a phase, for the waiting page.
pub fn phase_text(phase: &str) -> &'static str {
    match phase {
        "queued" => "queued for a launch slot",
        "creating" => "creating the container",
        "starting" => "starting the container",
        "waiting_ready" => "waiting for the application to be ready",
        "ready" => "ready",
        _ => "the container failed to start",
    }
}

/// The bare domain's page: the images this user may open.
pub fn index(user: &str, images: &[(String, String)]) -> String {
    let mut list = String::new();
    for (name, url) in images {
        let _ = write!(
            list,
            "<li><a href=\"{}\">{}</a></li>",
            escape(url),
            escape(name)
        );
    }
    if list.is_empty() {
        list.push_str("<li class=\"muted\">none yet</li>");
    }
    page(
        "Orca",
        &format!(
            "<h1>Images</h1><p class=\"muted\">Signed in as {}.</p><ul>{list}</ul>\
             <p><a href=\"/.orca/logout\">Log out</a></p>",
            escape(user)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiting_page_lists_the_phase_it_was_drawn_in() {
        // The first poll answers with the phase after this one; without it in the list from
        // the start, the page's log would begin at the second phase.
        let html = waiting("lab", "creating");
        assert!(
            html.contains("<ol id=\"log\" class=\"muted\"><li>creating the container</li></ol>"),
            "{html}"
        );
        assert!(html.contains("const seen=['creating'];"), "{html}");
        assert!(html.contains("poll('creating');"), "{html}");
    }

    #[test]
    fn everything_from_outside_is_escaped() {
        let hostile = "<script>alert('x')</script>\"&";
        for html in [
            status(403, hostile, hostile),
            login(hostile, Some(hostile)),
            waiting(hostile, hostile),
            index(hostile, &[(hostile.into(), hostile.into())]),
        ] {
            assert!(!html.contains("<script>alert"), "{html}");
            assert!(
                html.contains("&lt;script&gt;") || html.contains("failed to start"),
                "{html}"
            );
        }
    }
}
