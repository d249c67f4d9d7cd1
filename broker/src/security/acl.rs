//! ACLs in Kafka's model, and the authorizer that checks requests against them.
//!
//! An ACL binds a resource pattern (topic, group, cluster or transactional id; a literal name, `*`, or a
//! prefix) to a principal (`User:name`, or `User:*`), a host (an IP address or `*`), an operation and
//! allow/deny. The rules are those of Kafka's `StandardAuthorizer`:
//!
//! - a `super_users` principal may do anything;
//! - a DENY that matches the principal, host and operation (or `All`) wins over any ALLOW;
//! - an ALLOW of the operation, of `All`, or of an operation that implies it grants it: Read, Write,
//!   Delete and Alter imply Describe; AlterConfigs implies DescribeConfigs;
//! - a resource no ACL names at all (for any principal) is open to everyone only when
//!   `allow_everyone_if_no_acl_found` is true.
//!
//! ACLs come from two places: `[[broker.acls]]` in the config (fixed; DeleteAcls leaves them) and those
//! created with CreateAcls (`kafka-acls --add`), kept in `acls.json` under `log_dirs`, written
//! atomically and fsynced with its directory before the response.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const FILE_NAME: &str = "acls.json";
/// The name of the cluster resource, as Kafka spells it.
pub const CLUSTER_NAME: &str = "kafka-cluster";

macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:expr, $text:expr;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant,)* }

        impl $name {
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $(Self::$variant => $code,)* }
            }

            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some(Self::$variant),)* _ => None }
            }

            /// Parses Kafka's name in any case, with or without underscores (`IdempotentWrite`,
            /// `idempotent_write`, `IDEMPOTENT_WRITE`).
            pub fn parse(text: &str) -> Option<Self> {
                let folded: String = text.chars().filter(|c| *c != '_' && *c != '-').collect();
                $(if folded.eq_ignore_ascii_case(&$text.replace('_', "")) { return Some(Self::$variant); })*
                None
            }

            pub fn names() -> &'static [&'static str] {
                &[$($text,)*]
            }
        }
    };
}

kafka_enum!(
    /// Kafka's ResourceType, the kinds logpipe has.
    ResourceType {
        Topic = 2, "topic";
        Group = 3, "group";
        Cluster = 4, "cluster";
        TransactionalId = 5, "transactional_id";
    }
);

kafka_enum!(
    /// Kafka's PatternType for a stored ACL.
    PatternType {
        Literal = 3, "literal";
        Prefixed = 4, "prefixed";
    }
);

kafka_enum!(
    /// Kafka's AclOperation.
    Operation {
        All = 2, "all";
        Read = 3, "read";
        Write = 4, "write";
        Create = 5, "create";
        Delete = 6, "delete";
        Alter = 7, "alter";
        Describe = 8, "describe";
        ClusterAction = 9, "cluster_action";
        DescribeConfigs = 10, "describe_configs";
        AlterConfigs = 11, "alter_configs";
        IdempotentWrite = 12, "idempotent_write";
    }
);

kafka_enum!(
    /// Kafka's AclPermissionType.
    Permission {
        Deny = 2, "deny";
        Allow = 3, "allow";
    }
);

impl Operation {
    /// Whether an ALLOW of `self` grants `wanted` (Kafka's implied operations).
    fn grants(self, wanted: Operation) -> bool {
        use Operation::*;
        self == All
            || self == wanted
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }
}

/// Codes of the filter wildcards in DescribeAcls and DeleteAcls.
pub const ANY: i8 = 1;
/// PatternType MATCH: a literal name, `*`, and every prefix of the name.
pub const MATCH: i8 = 2;

/// One ACL: `[[broker.acls]]` in the config, one entry of `acls.json`, one binding of CreateAcls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    /// A topic, group or transactional id name; `*` for all (literal only); `kafka-cluster` for the
    /// cluster, which is also the default there.
    #[serde(default)]
    pub resource_name: String,
    #[serde(default = "literal")]
    pub pattern_type: PatternType,
    /// `User:name`, or `User:*` for every user (unauthenticated clients are `User:ANONYMOUS`).
    pub principal: String,
    /// A client IP address, or `*` (the default) for any.
    #[serde(default = "any_host")]
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

fn literal() -> PatternType {
    PatternType::Literal
}

fn any_host() -> String {
    "*".to_owned()
}

/// `[[broker.acls]]`: one entry may list several operations, as `kafka-acls --operation` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    pub principal: String,
    pub resource_type: String,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub pattern_type: Option<String>,
    pub operations: Vec<String>,
    #[serde(default)]
    pub permission: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
}

impl AclConfig {
    /// The bindings of entry number `index` (from 0), or a message naming the key at fault.
    pub fn bindings(&self, index: usize) -> Result<Vec<AclBinding>> {
        let bad = |key: &str, msg: String| Error::Config(format!("broker.acls[{index}].{key}: {msg}"));
        let resource_type = ResourceType::parse(&self.resource_type).ok_or_else(|| {
            bad("resource_type", format!("`{}` is not one of {}", self.resource_type, ResourceType::names().join(", ")))
        })?;
        let pattern_type = match &self.pattern_type {
            None => PatternType::Literal,
            Some(p) => PatternType::parse(p)
                .ok_or_else(|| bad("pattern_type", format!("`{p}` is not one of literal, prefixed")))?,
        };
        let permission = match &self.permission {
            None => Permission::Allow,
            Some(p) => Permission::parse(p).ok_or_else(|| bad("permission", format!("`{p}` is not allow or deny")))?,
        };
        let resource_name = match (&self.resource_name, resource_type) {
            (None, ResourceType::Cluster) => CLUSTER_NAME.to_owned(),
            (Some(n), _) if !n.is_empty() => n.clone(),
            _ => return Err(bad("resource_name", "missing: a name, a prefix, or `*` for all".into())),
        };
        if self.operations.is_empty() {
            return Err(bad("operations", "empty: list at least one, e.g. [\"read\", \"describe\"]".into()));
        }
        let mut out = Vec::new();
        for op in &self.operations {
            let operation = Operation::parse(op)
                .ok_or_else(|| bad("operations", format!("`{op}` is not one of {}", Operation::names().join(", "))))?;
            let binding = AclBinding {
                resource_type,
                resource_name: resource_name.clone(),
                pattern_type,
                principal: self.principal.clone(),
                host: self.host.clone().unwrap_or_else(any_host),
                operation,
                permission,
            };
            binding.validate().map_err(|msg| bad("principal", msg))?;
            out.push(binding);
        }
        Ok(out)
    }
}

impl AclBinding {
    /// What Kafka refuses in CreateAcls: a principal that is not `Type:name`, a prefixed `*`, a bad host.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(format!("`{}` is not a principal such as User:alice or User:*", self.principal)),
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == "*" {
            return Err("a prefixed pattern cannot be `*` (use a literal `*`)".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(format!("the cluster resource is named `{CLUSTER_NAME}`"));
        }
        if self.host != "*" && self.host.parse::<IpAddr>().is_err() {
            return Err(format!("host `{}` is not an IP address or `*`", self.host));
        }
        Ok(())
    }

    fn matches_resource(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    /// `host` is the client's address as text, made only if an ACL names a host.
    fn matches_who(&self, principal: &str, host: &mut HostText) -> bool {
        (self.principal == principal || self.principal == "User:*") && (self.host == "*" || self.host == host.get())
    }
}

/// A DescribeAcls / DeleteAcls filter in wire codes; `None` strings match anything.
#[derive(Debug, Clone)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    /// Whether the filter could match anything; Kafka answers INVALID_REQUEST for an UNKNOWN (0) code.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let ok = |code: i8, known: bool| code == ANY || known;
        if !ok(self.resource_type, ResourceType::from_code(self.resource_type).is_some()) {
            return Err(format!("unknown resource type {}", self.resource_type));
        }
        if !ok(self.pattern_type, self.pattern_type == MATCH || PatternType::from_code(self.pattern_type).is_some()) {
            return Err(format!("unknown pattern type {}", self.pattern_type));
        }
        if !ok(self.operation, Operation::from_code(self.operation).is_some()) {
            return Err(format!("unknown operation {}", self.operation));
        }
        if !ok(self.permission, Permission::from_code(self.permission).is_some()) {
            return Err(format!("unknown permission type {}", self.permission));
        }
        Ok(())
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let code_ok = |filter: i8, code: i8| filter == ANY || filter == code;
        let text_ok = |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        let pattern_ok = match (self.pattern_type, &self.resource_name) {
            (MATCH, Some(name)) => match acl.pattern_type {
                PatternType::Literal => acl.resource_name == *name || acl.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&acl.resource_name),
            },
            (MATCH, None) => true,
            (code, name) => code_ok(code, acl.pattern_type.code()) && text_ok(name, &acl.resource_name),
        };
        code_ok(self.resource_type, acl.resource_type.code())
            && pattern_ok
            && text_ok(&self.principal, &acl.principal)
            && text_ok(&self.host, &acl.host)
            && code_ok(self.operation, acl.operation.code())
            && code_ok(self.permission, acl.permission.code())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    acls: Vec<AclBinding>,
}

/// Who may do what. Shared by every connection; checks take a read lock and scan the ACLs of one
/// resource type, once per request and resource (never per record).
pub struct Authorizer {
    path: PathBuf,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    configured: Vec<AclBinding>,
    /// ACLs created through CreateAcls (persisted in `acls.json`).
    created: Mutex<Vec<AclBinding>>,
    /// `configured` and `created` together, swapped whole on change.
    all: RwLock<Arc<Vec<AclBinding>>>,
    /// `allow_if_no_acl` and no ACL at all: every request may pass unchecked. An atomic, so the
    /// per-request test of the default (loopback) broker takes no lock.
    open: AtomicBool,
    /// Refused requests, logged rate-limited.
    pub denials: DenialLog,
}

/// Logs requests the ACLs refused (peer, principal, API and what was missing), at most `PER_SECOND` a
/// second; the rest are counted and reported with the next line after that second, so a client retrying
/// a refused produce cannot flood the log.
#[derive(Default)]
pub struct DenialLog {
    window: Mutex<Option<(std::time::Instant, u32, u32)>>,
}

impl DenialLog {
    const PER_SECOND: u32 = 5;

    pub fn record(
        &self,
        peer: std::net::SocketAddr,
        principal: &str,
        api: Option<kafka_protocol::messages::ApiKey>,
        refused: &[String],
    ) {
        let mut window = self.window.lock().expect("denial log lock poisoned");
        let now = std::time::Instant::now();
        let (start, logged, suppressed) = window.get_or_insert((now, 0, 0));
        if now.duration_since(*start) >= std::time::Duration::from_secs(1) {
            if *suppressed > 0 {
                tracing::warn!(
                    suppressed = *suppressed,
                    "more requests refused by ACLs in the last second (not logged)"
                );
            }
            (*start, *logged, *suppressed) = (now, 0, 0);
        }
        if *logged < Self::PER_SECOND {
            *logged += 1;
            let api = api.map(|a| format!("{a:?}")).unwrap_or_default();
            tracing::warn!(%peer, %principal, %api, refused = %refused.join(", "), "request refused by ACLs");
        } else {
            *suppressed += 1;
        }
    }
}

/// A client address as text, formatted at most once per check and only when an ACL names a host.
struct HostText {
    ip: IpAddr,
    text: Option<String>,
}

impl HostText {
    fn new(ip: IpAddr) -> Self {
        Self { ip, text: None }
    }

    fn get(&mut self) -> &str {
        self.text.get_or_insert_with(|| self.ip.to_string())
    }
}

/// A request's identity as the authorizer sees it.
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: IpAddr,
}

impl Authorizer {
    pub fn open(
        log_dirs: &Path,
        configured: Vec<AclBinding>,
        super_users: Vec<String>,
        allow_if_no_acl: bool,
    ) -> Result<Self> {
        let path = log_dirs.join(FILE_NAME);
        let created = match logpipe_durable::read_optional(&path)
            .map_err(|source| Error::Storage { path: path.clone(), source })?
        {
            None => Vec::new(),
            Some(bytes) => {
                serde_json::from_slice::<StoreFile>(&bytes)
                    .map_err(|e| {
                        Error::Config(format!("{}: not a logpipe ACL file ({e}); fix or remove it", path.display()))
                    })?
                    .acls
            }
        };
        let all: Vec<AclBinding> = configured.iter().chain(&created).cloned().collect();
        Ok(Self {
            open: AtomicBool::new(allow_if_no_acl && all.is_empty()),
            path,
            super_users,
            allow_if_no_acl,
            configured,
            created: Mutex::new(created),
            all: RwLock::new(Arc::new(all)),
            denials: DenialLog::default(),
        })
    }

    fn snapshot(&self) -> Arc<Vec<AclBinding>> {
        self.all.read().expect("acl lock poisoned").clone()
    }

    /// True when no check can fail: nothing needs to be looked at per request.
    pub fn allows_everyone(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.iter().any(|p| p == principal)
    }

    /// Whether `who` may do `operation` on the named resource.
    pub fn authorize(&self, who: &Requester, operation: Operation, resource_type: ResourceType, name: &str) -> bool {
        if self.is_super_user(who.principal) {
            return true;
        }
        let acls = self.snapshot();
        let mut host = HostText::new(who.host);
        let mut any = false;
        let mut allowed = false;
        for acl in acls.iter().filter(|a| a.matches_resource(resource_type, name)) {
            any = true;
            if !acl.matches_who(who.principal, &mut host) {
                continue;
            }
            match acl.permission {
                Permission::Deny if acl.operation == operation || acl.operation == Operation::All => return false,
                Permission::Deny => {}
                Permission::Allow => allowed |= acl.operation.grants(operation),
            }
        }
        allowed || (!any && self.allow_if_no_acl)
    }

    /// Whether `who` may do `operation` on at least one resource of the type (Kafka's
    /// `authorizeByResourceType`, used for idempotent producers: WRITE on any topic).
    pub fn authorize_any(&self, who: &Requester, operation: Operation, resource_type: ResourceType) -> bool {
        if self.is_super_user(who.principal) {
            return true;
        }
        let acls = self.snapshot();
        let mut host = HostText::new(who.host);
        let of_type: Vec<&AclBinding> = acls.iter().filter(|a| a.resource_type == resource_type).collect();
        if of_type.is_empty() {
            return self.allow_if_no_acl;
        }
        let mine: Vec<&AclBinding> = of_type.into_iter().filter(|a| a.matches_who(who.principal, &mut host)).collect();
        let denied_all = mine.iter().any(|a| {
            a.permission == Permission::Deny
                && (a.operation == operation || a.operation == Operation::All)
                && a.pattern_type == PatternType::Literal
                && a.resource_name == "*"
        });
        !denied_all && mine.iter().any(|a| a.permission == Permission::Allow && a.operation.grants(operation))
    }

    /// ACLs (configured and created) that match `filter`, for DescribeAcls.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.snapshot().iter().filter(|a| filter.matches(a)).cloned().collect()
    }

    /// Adds bindings (already validated) and persists them; duplicates are not stored twice.
    pub fn create(&self, bindings: Vec<AclBinding>) -> Result<()> {
        let mut created = self.created.lock().expect("acl lock poisoned");
        let mut next = created.clone();
        for b in bindings {
            if !next.contains(&b) && !self.configured.contains(&b) {
                next.push(b);
            }
        }
        self.commit(&mut created, next)
    }

    /// Removes created ACLs matching each filter; per filter, the ACLs it removed. Configured ACLs stay.
    pub fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>> {
        let mut created = self.created.lock().expect("acl lock poisoned");
        let mut removed = vec![Vec::new(); filters.len()];
        let next: Vec<AclBinding> = created
            .iter()
            .filter(|acl| {
                let mut keep = true;
                for (i, f) in filters.iter().enumerate() {
                    if f.matches(acl) {
                        removed[i].push((*acl).clone());
                        keep = false;
                    }
                }
                keep
            })
            .cloned()
            .collect();
        self.commit(&mut created, next)?;
        Ok(removed)
    }

    fn commit(&self, created: &mut Vec<AclBinding>, next: Vec<AclBinding>) -> Result<()> {
        if *created == next {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&StoreFile { acls: next.clone() })
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let options = logpipe_durable::WriteOptions { mode: Some(0o600), create_dir: true };
        logpipe_durable::write_atomic_with(&self.path, &bytes, options)
            .map_err(|source| Error::Storage { path: self.path.clone(), source })?;
        let all: Vec<AclBinding> = self.configured.iter().chain(&next).cloned().collect();
        *created = next;
        // Closed before the ACLs appear, so no request passes unchecked once they exist.
        self.open.store(self.allow_if_no_acl && all.is_empty(), Ordering::SeqCst);
        *self.all.write().expect("acl lock poisoned") = Arc::new(all);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: ResourceType, name: &str, pt: PatternType, who: &str, op: Operation, perm: Permission) -> AclBinding {
        AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: who.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    fn requester(p: &str) -> Requester<'_> {
        Requester { principal: p, host: "10.0.0.1".parse().unwrap() }
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn kafka_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let acls = vec![
            acl(Topic, "app", Literal, "User:alice", Read, Allow),
            acl(Topic, "logs-", Prefixed, "User:alice", Write, Allow),
            acl(Topic, "logs-secret", Literal, "User:alice", Write, Deny),
            acl(Group, "*", Literal, "User:*", Read, Allow),
        ];
        let a = Authorizer::open(dir.path(), acls, vec!["User:admin".into()], false).unwrap();
        let alice = requester("User:alice");
        assert!(a.authorize(&alice, Read, Topic, "app"));
        assert!(a.authorize(&alice, Describe, Topic, "app"), "READ implies DESCRIBE");
        assert!(!a.authorize(&alice, Write, Topic, "app"));
        assert!(a.authorize(&alice, Write, Topic, "logs-web"));
        assert!(!a.authorize(&alice, Write, Topic, "logs-secret"), "deny wins");
        assert!(a.authorize(&alice, Describe, Topic, "logs-secret"), "a deny of WRITE leaves DESCRIBE");
        assert!(!a.authorize(&alice, Read, Topic, "other"), "no ACL and allow_everyone off");
        assert!(a.authorize(&requester("User:bob"), Read, Group, "g1"), "User:* and literal *");
        assert!(a.authorize(&requester("User:admin"), Delete, Topic, "other"), "super user");
        assert!(a.authorize_any(&alice, Write, Topic));
        assert!(!a.authorize_any(&requester("User:bob"), Write, Topic));

        let open =
            Authorizer::open(dir.path(), vec![acl(Topic, "app", Literal, "User:alice", Read, Allow)], vec![], true)
                .unwrap();
        assert!(open.authorize(&requester("User:bob"), Write, Topic, "other"), "no ACL names `other`");
        assert!(!open.authorize(&requester("User:bob"), Read, Topic, "app"), "`app` has ACLs, none for bob");
    }

    #[test]
    fn created_acls_persist_and_delete_by_filter() {
        let dir = tempfile::tempdir().unwrap();
        let fixed = acl(Topic, "app", Literal, "User:alice", Read, Allow);
        let a = Authorizer::open(dir.path(), vec![fixed.clone()], vec![], false).unwrap();
        let made = acl(Group, "idx", Prefixed, "User:bob", Read, Allow);
        a.create(vec![made.clone(), made.clone()]).unwrap();
        let again = Authorizer::open(dir.path(), vec![fixed.clone()], vec![], false).unwrap();
        let everything = AclFilter {
            resource_type: ANY,
            resource_name: None,
            pattern_type: ANY,
            principal: None,
            host: None,
            operation: ANY,
            permission: ANY,
        };
        assert_eq!(again.describe(&everything), vec![fixed.clone(), made.clone()]);
        let matching = AclFilter { pattern_type: MATCH, resource_name: Some("idx-1".into()), ..everything.clone() };
        assert_eq!(again.describe(&matching), vec![made.clone()]);
        let removed = again.delete(std::slice::from_ref(&everything)).unwrap();
        assert_eq!(removed, vec![vec![made]], "configured ACLs are not deleted");
        assert_eq!(Authorizer::open(dir.path(), vec![], vec![], false).unwrap().describe(&everything), vec![]);
    }

    #[test]
    fn config_entries_name_the_bad_key() {
        let entry = AclConfig {
            principal: "User:alice".into(),
            resource_type: "topic".into(),
            resource_name: Some("app".into()),
            pattern_type: None,
            operations: vec!["Read".into(), "DESCRIBE".into(), "idempotent_write".into()],
            permission: None,
            host: None,
        };
        assert_eq!(entry.bindings(0).unwrap().len(), 3);
        let bad = AclConfig { operations: vec!["reed".into()], ..entry.clone() };
        assert!(bad.bindings(2).unwrap_err().to_string().contains("broker.acls[2].operations"));
        let bad = AclConfig { principal: "alice".into(), ..entry };
        assert!(bad.bindings(0).unwrap_err().to_string().contains("User:alice"));
    }
}
