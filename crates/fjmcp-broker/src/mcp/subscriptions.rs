//! `subscriptions/listen` (2026-07-28 `basic/patterns/subscriptions.mdx`):
//! which notification types the broker agrees to deliver on a listen stream,
//! the acknowledgment that opens it, the tag on every notification it carries,
//! and the response that closes it gracefully.
//!
//! Decisions:
//!
//! - **Only list changes are honoured**: `toolsListChanged`,
//!   `promptsListChanged`, `resourcesListChanged`, and each only when the
//!   child advertises `listChanged: true` for that primitive (the ack
//!   "reflects the subset the server agreed to honor. Notification types the
//!   server does not support are omitted"). `resourceSubscriptions` is always
//!   omitted: `notifications/resources/updated` from a child shared by many
//!   streams and sessions cannot be routed to the stream that asked, so the
//!   broker neither relays them nor advertises `resources.subscribe`.
//! - **The ack lists honoured flags as `true` and nothing else**; an empty
//!   `notifications: {}` means nothing was agreed to (the stream may still be
//!   held open; the caller decides).
//! - **A missing or malformed filter counts as an empty one** (flags that are
//!   not `true` are not requested). The schema makes `notifications`
//!   required, but refusing a listen request whose only effect would be an
//!   empty subscription helps nobody; the ack tells the client what it got.
//! - **The subscription id is the listen request's JSON-RPC id**, exactly as
//!   sent (number stays number, string stays string).

use serde_json::{Map, Value, json};

use super::wire::{RpcRequest, meta, notification, result_response};

/// The acknowledgment's method.
const ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";

/// A list whose changes a listen stream can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ListKind {
    /// `tools/list`.
    Tools,
    /// `prompts/list`.
    Prompts,
    /// `resources/list`.
    Resources,
}

impl ListKind {
    /// All kinds.
    pub(crate) const ALL: [ListKind; 3] = [ListKind::Tools, ListKind::Prompts, ListKind::Resources];

    /// The notification a server sends when this list changes.
    fn notification_method(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources => "notifications/resources/list_changed",
        }
    }

    /// The `SubscriptionFilter` flag that asks for it.
    fn filter_flag(self) -> &'static str {
        match self {
            ListKind::Tools => "toolsListChanged",
            ListKind::Prompts => "promptsListChanged",
            ListKind::Resources => "resourcesListChanged",
        }
    }

    /// The server capability whose `listChanged` advertises it.
    pub(crate) fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
        }
    }

    /// The kind a child notification method announces, if it is a list change.
    pub(crate) fn of_notification(method: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.notification_method() == method)
    }
}

/// The set of list changes a listen stream delivers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SubscriptionFilter {
    /// Deliver `notifications/tools/list_changed`.
    pub tools_list_changed: bool,
    /// Deliver `notifications/prompts/list_changed`.
    pub prompts_list_changed: bool,
    /// Deliver `notifications/resources/list_changed`.
    pub resources_list_changed: bool,
}

impl SubscriptionFilter {
    /// Whether `kind` is in the set.
    pub(crate) fn contains(&self, kind: ListKind) -> bool {
        match kind {
            ListKind::Tools => self.tools_list_changed,
            ListKind::Prompts => self.prompts_list_changed,
            ListKind::Resources => self.resources_list_changed,
        }
    }

    /// Whether a child notification with this method belongs on the stream.
    pub(crate) fn accepts(&self, method: &str) -> bool {
        ListKind::of_notification(method).is_some_and(|k| self.contains(k))
    }

    /// What a listen request's `params.notifications` asks for (lenient; see
    /// the module notes).
    pub(crate) fn requested(listen_params: Option<&Map<String, Value>>) -> Self {
        let filter = listen_params
            .and_then(|p| p.get("notifications"))
            .and_then(Value::as_object);
        Self::from_fn(|kind| {
            filter.and_then(|f| f.get(kind.filter_flag())) == Some(&Value::Bool(true))
        })
    }

    /// What the child can announce: the primitives whose capability has
    /// `listChanged: true`.
    fn supported_by(child_capabilities: &Value) -> Self {
        Self::from_fn(|kind| {
            child_capabilities
                .get(kind.capability())
                .and_then(|c| c.get("listChanged"))
                == Some(&Value::Bool(true))
        })
    }

    /// Both sets at once.
    fn intersect(self, other: Self) -> Self {
        Self::from_fn(|kind| self.contains(kind) && other.contains(kind))
    }

    /// The filter as a `SubscriptionFilter` object (only `true` flags).
    fn to_json(self) -> Value {
        let mut object = Map::new();
        for kind in ListKind::ALL {
            if self.contains(kind) {
                object.insert(kind.filter_flag().into(), Value::Bool(true));
            }
        }
        Value::Object(object)
    }

    /// A filter built flag by flag.
    fn from_fn(mut f: impl FnMut(ListKind) -> bool) -> Self {
        Self {
            tools_list_changed: f(ListKind::Tools),
            prompts_list_changed: f(ListKind::Prompts),
            resources_list_changed: f(ListKind::Resources),
        }
    }
}

/// Accepts a `subscriptions/listen` request: the filter the stream will apply
/// and the `notifications/subscriptions/acknowledged` to send as its first
/// message. `child_capabilities` is the child's
/// `InitializeResult.capabilities`.
pub(crate) fn ack_subscription(
    listen: &RpcRequest,
    child_capabilities: &Value,
) -> (SubscriptionFilter, Value) {
    let agreed = SubscriptionFilter::requested(listen.params())
        .intersect(SubscriptionFilter::supported_by(child_capabilities));
    let ack = notification(
        ACKNOWLEDGED,
        json!({
            "_meta": { meta::SUBSCRIPTION_ID: listen.id.clone() },
            "notifications": agreed.to_json(),
        }),
    );
    (agreed, ack)
}

/// A child notification as it goes out on a listen stream: with
/// `params._meta["io.modelcontextprotocol/subscriptionId"]` set, every other
/// field kept. Non-object `params` (malformed for a notification) is replaced,
/// since the tag is mandatory on the stream.
pub(crate) fn tag_for_subscription(mut notification: Value, subscription_id: &Value) -> Value {
    let Some(object) = notification.as_object_mut() else {
        return notification;
    };
    let params = object
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    if !params.is_object() {
        *params = Value::Object(Map::new());
    }
    let Some(params) = params.as_object_mut() else {
        return notification;
    };
    let meta_value = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta_value.is_object() {
        *meta_value = Value::Object(Map::new());
    }
    if let Some(meta_map) = meta_value.as_object_mut() {
        meta_map.insert(meta::SUBSCRIPTION_ID.into(), subscription_id.clone());
    }
    notification
}

/// The response that ends a listen stream gracefully (e.g. at shutdown):
/// `{resultType: "complete", _meta: {subscriptionId}}`, answering the listen
/// request's id. `server_info` is added to `_meta` when it is an object.
pub(crate) fn subscription_closed(subscription_id: &Value, server_info: &Value) -> Value {
    let mut meta_map = Map::new();
    meta_map.insert(meta::SUBSCRIPTION_ID.into(), subscription_id.clone());
    if server_info.is_object() {
        meta_map.insert(meta::SERVER_INFO.into(), server_info.clone());
    }
    result_response(
        subscription_id.clone(),
        json!({ "resultType": "complete", "_meta": meta_map }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::wire::{Incoming, parse_body};

    fn listen(id: Value, filter: Value) -> RpcRequest {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": {
            "_meta": {meta::PROTOCOL_VERSION: "2026-07-28", meta::CLIENT_CAPABILITIES: {}},
            "notifications": filter}});
        match parse_body(body.to_string().as_bytes()).unwrap() {
            Incoming::Request(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ack_honours_only_supported_list_changes() {
        let all_caps = json!({"tools": {"listChanged": true}, "prompts": {"listChanged": true},
            "resources": {"listChanged": true, "subscribe": true}});
        // (requested filter, child capabilities, agreed filter)
        let cases = [
            (
                json!({"toolsListChanged": true}),
                all_caps.clone(),
                json!({"toolsListChanged": true}),
            ),
            (
                json!({"promptsListChanged": true}),
                all_caps.clone(),
                json!({"promptsListChanged": true}),
            ),
            (
                json!({"toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true,
                    "resourceSubscriptions": ["file:///project/config.json"]}),
                all_caps.clone(),
                json!({"toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true}),
            ),
            (
                json!({"resourceSubscriptions": ["test://watched-resource"]}),
                all_caps.clone(),
                json!({}),
            ),
            (
                json!({"toolsListChanged": false}),
                all_caps.clone(),
                json!({}),
            ),
            (
                json!({"toolsListChanged": "yes"}),
                all_caps.clone(),
                json!({}),
            ),
            (json!({}), all_caps.clone(), json!({})),
            (json!(null), all_caps, json!({})),
            (
                json!({"toolsListChanged": true, "promptsListChanged": true}),
                json!({"tools": {"listChanged": true}, "prompts": {}}),
                json!({"toolsListChanged": true}),
            ),
            (
                json!({"toolsListChanged": true}),
                json!({"tools": {"listChanged": "true"}}),
                json!({}),
            ),
            (json!({"toolsListChanged": true}), json!({}), json!({})),
        ];
        for (requested, caps, agreed) in cases {
            let (filter, ack) = ack_subscription(&listen(json!(1), requested.clone()), &caps);
            assert_eq!(filter.to_json(), agreed, "{requested} / {caps}");
            assert_eq!(
                ack,
                json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                    "params": {"_meta": {meta::SUBSCRIPTION_ID: 1}, "notifications": agreed}}),
                "{requested} / {caps}"
            );
        }
    }

    #[test]
    fn the_subscription_id_is_the_listen_id_as_sent() {
        for id in [
            json!(1),
            json!(1_722_000_000_000_u64),
            json!("sub-a"),
            json!("1"),
        ] {
            let (_, ack) = ack_subscription(&listen(id.clone(), json!({})), &json!({}));
            assert_eq!(ack["params"]["_meta"][meta::SUBSCRIPTION_ID], id);
            let closed = subscription_closed(&id, &json!({"name": "s", "version": "1"}));
            assert_eq!(closed["id"], id);
            assert_eq!(closed["result"]["resultType"], json!("complete"));
            assert_eq!(closed["result"]["_meta"][meta::SUBSCRIPTION_ID], id);
        }
    }

    #[test]
    fn filter_accepts_only_its_notifications() {
        let filter = SubscriptionFilter {
            prompts_list_changed: true,
            ..SubscriptionFilter::default()
        };
        assert!(filter.accepts("notifications/prompts/list_changed"));
        assert!(!filter.accepts("notifications/tools/list_changed"));
        assert!(!filter.accepts("notifications/resources/list_changed"));
        assert!(!filter.accepts("notifications/resources/updated"));
        assert!(!filter.accepts("notifications/message"));
        for kind in ListKind::ALL {
            assert_eq!(
                ListKind::of_notification(kind.notification_method()),
                Some(kind)
            );
        }
        assert_eq!(ListKind::of_notification("notifications/progress"), None);
    }

    #[test]
    fn tagging_keeps_everything_else() {
        let id = json!(42);
        let cases = [
            (
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                    "params": {"_meta": {meta::SUBSCRIPTION_ID: 42}}}),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                    "params": {"x": 1, "_meta": {"com.example/y": 2}}}),
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                    "params": {"x": 1, "_meta": {"com.example/y": 2, meta::SUBSCRIPTION_ID: 42}}}),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "m", "params": {"_meta": {meta::SUBSCRIPTION_ID: "old"}}}),
                json!({"jsonrpc": "2.0", "method": "m", "params": {"_meta": {meta::SUBSCRIPTION_ID: 42}}}),
            ),
            (
                json!({"jsonrpc": "2.0", "method": "m", "params": [1]}),
                json!({"jsonrpc": "2.0", "method": "m", "params": {"_meta": {meta::SUBSCRIPTION_ID: 42}}}),
            ),
            (json!("not an object"), json!("not an object")),
        ];
        for (input, expected) in cases {
            assert_eq!(
                tag_for_subscription(input.clone(), &id),
                expected,
                "{input}"
            );
        }
    }
}
