use std::time::Duration;

use pretty_assertions::assert_eq;

use super::*;

fn state(s: &str) -> SecretString {
    SecretString::new(s)
}

const T: Duration = Duration::from_secs(2);

#[tokio::test]
async fn delivers_code_to_the_matching_flow_only_once() {
    let router = CallbackRouter::new();
    let a = router.register(&state("state-a"), None);
    let b = router.register(&state("state-b"), None);
    assert_eq!(router.deliver("code=code-b&state=state-b"), Delivery::Completed);
    assert_eq!(router.deliver("code=again&state=state-b"), Delivery::UnknownState, "replay must find nothing");
    assert_eq!(router.deliver("code=code-a&state=state-a"), Delivery::Completed);
    assert_eq!(b.wait(T).await.map(|c| c.code.expose().to_owned()), Ok("code-b".to_owned()));
    assert_eq!(a.wait(T).await.map(|c| c.code.expose().to_owned()), Ok("code-a".to_owned()));
    assert_eq!(router.waiting_count(), 0);
}

#[tokio::test]
async fn unknown_and_malformed_responses() {
    let router = CallbackRouter::new();
    let _a = router.register(&state("right"), None);
    assert_eq!(router.deliver("code=x&state=wrong"), Delivery::UnknownState);
    assert_eq!(router.deliver("code=x&state=righ"), Delivery::UnknownState);
    assert_eq!(router.deliver("code=x"), Delivery::Malformed("the redirect has no `state`".to_owned()));
    assert_eq!(
        router.deliver("code=x&state=right&state=right"),
        Delivery::Malformed("the redirect repeats `state`".to_owned())
    );
    assert_eq!(
        router.deliver(&"a".repeat(MAX_CALLBACK_QUERY + 1)),
        Delivery::Malformed("the redirect is too long".to_owned())
    );
    assert_eq!(router.waiting_count(), 1, "bad responses must not consume the flow");
}

#[tokio::test]
async fn error_responses_reach_the_flow() {
    let router = CallbackRouter::new();
    let pending = router.register(&state("s"), None);
    let delivery = router.deliver("error=access_denied&error_description=The+user+said+no%0A%1B%5B31m&state=s");
    let want =
        CallbackError::Denied { error: "access_denied".to_owned(), description: Some("The user said no".to_owned()) };
    assert_eq!(delivery, Delivery::Refused(want.to_string()));
    assert_eq!(pending.wait(T).await.map(|_| ()), Err(want));
}

#[tokio::test]
async fn missing_code() {
    let router = CallbackRouter::new();
    let pending = router.register(&state("s"), None);
    assert_eq!(router.deliver("state=s"), Delivery::Refused(CallbackError::MissingCode.to_string()));
    assert_eq!(pending.wait(T).await.map(|_| ()), Err(CallbackError::MissingCode));
}

fn check(required: bool) -> Option<IssCheck> {
    Some(IssCheck { issuer: "https://as.example".to_owned(), required })
}

#[tokio::test]
async fn iss_rules() {
    type Case<'a> = (Option<IssCheck>, &'a str, Result<Option<&'a str>, CallbackError>);
    let cases: [Case<'_>; 6] = [
        (check(true), "code=c&state=s&iss=https%3A%2F%2Fas.example", Ok(Some("https://as.example"))),
        (
            check(true),
            "code=c&state=s",
            Err(CallbackError::IssuerMissing { expected: "https://as.example".to_owned() }),
        ),
        (
            check(true),
            "code=c&state=s&iss=https%3A%2F%2Fevil.example",
            Err(CallbackError::IssuerMismatch {
                expected: "https://as.example".to_owned(),
                received: "https://evil.example".to_owned(),
            }),
        ),
        (check(false), "code=c&state=s", Ok(None)),
        (
            check(false),
            "code=c&state=s&iss=https%3A%2F%2Fevil.example",
            Err(CallbackError::IssuerMismatch {
                expected: "https://as.example".to_owned(),
                received: "https://evil.example".to_owned(),
            }),
        ),
        (check(false), "code=c&state=s&iss=https%3A%2F%2Fas.example", Ok(Some("https://as.example"))),
    ];
    for (iss, query, want) in cases {
        let router = CallbackRouter::new();
        let pending = router.register(&state("s"), iss);
        router.deliver(query);
        let got = pending.wait(T).await.map(|c| c.iss);
        assert_eq!(got, want.map(|o| o.map(str::to_owned)), "{query}");
    }
}

#[tokio::test]
async fn timeout_and_drop_unregister() {
    let router = CallbackRouter::new();
    let pending = router.register(&state("s"), None);
    assert_eq!(
        pending.wait(Duration::from_millis(20)).await.map(|_| ()),
        Err(CallbackError::TimedOut(Duration::from_millis(20)))
    );
    assert_eq!(router.waiting_count(), 0);
    assert_eq!(router.deliver("code=c&state=s"), Delivery::UnknownState);

    let dropped = router.register(&state("t"), None);
    drop(dropped);
    assert_eq!(router.waiting_count(), 0);
}

#[test]
fn debug_never_shows_the_code() {
    let code = AuthorizationCode { code: SecretString::new("the-code"), iss: None };
    assert!(!format!("{code:?}").contains("the-code"));
}

#[tokio::test]
async fn a_foreign_iss_reaches_the_user_without_control_characters() {
    // The `iss` of a mix-up attempt is chosen by the attacker and is quoted in
    // the refusal the browser page, the terminal and the log show.
    let router = CallbackRouter::new();
    let pending = router.register(&state("s"), check(false));
    let Delivery::Refused(shown) = router.deliver("code=c&state=s&iss=https%3A%2F%2Fevil.example%1B%5B2J%07") else {
        panic!("a foreign iss must be refused");
    };
    let error = pending.wait(T).await.map(|_| ()).map_err(|e| e.to_string());
    assert_eq!(error, Err(shown.clone()));
    assert!(shown.contains("`https://evil.example"), "{shown}");
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
}
