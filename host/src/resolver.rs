//! Dependency resolver for systems (plugins): pure logic, no I/O, no loading.
//!
//! Given the discovered [`Candidate`]s and the enabled ids, [`resolve`] computes
//! which systems to activate, in which order, why, and what is wrong with the rest:
//!
//! 1. Start from the enabled ids; an unknown one is [`ResolveError::UnknownSystem`].
//! 2. Hard `requires` are added transitively. The [`Reason`] of each system is
//!    `Enabled`, else `RequiredBy` a requirer, else `WantedBy` a wanter; among
//!    several, planned ones first, then the one nearest the enabled set (the
//!    one that pulled it in), then the alphabetically smallest.
//! 3. A requirement on a missing system, or on one whose version does not match the
//!    [`semver::VersionReq`], makes the requirer `Failed`.
//! 4. Soft `wants` add the wanted system (and its requirements) only when it exists
//!    and its version matches; otherwise a [`Warning`] is recorded. Wants never order
//!    anything, never form cycles, and a failing wanted system leaves its wanter alone.
//! 5. Every cycle of hard edges (strongly connected component or self-loop) fails all
//!    of its members with [`ResolveError::Cycle`].
//! 6. A system that transitively requires a failed one is `Blocked` by the
//!    alphabetically smallest failed system it depends on.
//! 7. The activation order is Kahn's algorithm over hard edges with an alphabetical
//!    ready-queue, so it never depends on input order; deactivation is the reverse.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::hash::RandomState;

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};

/// A dependency of a system on another system: its id and the accepted versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dep {
    /// Id of the system depended upon.
    pub id: String,
    /// Versions of that system that are accepted.
    pub req: VersionReq,
}

/// A discovered system that may be activated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Unique, lowercase id of the system (e.g. `user`).
    pub id: String,
    /// Version of the system.
    pub version: Version,
    /// Hard dependencies: activated first (and automatically); the system fails without them.
    #[serde(default)]
    pub requires: Vec<Dep>,
    /// Soft dependencies: activated if present and compatible, ignored otherwise.
    #[serde(default)]
    pub wants: Vec<Dep>,
}

/// Why a system is part of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The system was enabled explicitly.
    Enabled,
    /// The system is hard-required by the named system.
    RequiredBy(String),
    /// The system is soft-wanted by the named system.
    WantedBy(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Enabled => f.write_str("enabled"),
            Reason::RequiredBy(id) => write!(f, "required by {id}"),
            Reason::WantedBy(id) => write!(f, "wanted by {id}"),
        }
    }
}

/// A problem found while resolving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// An enabled id matches no discovered system.
    #[error("enabled system '{id}' was not found; discovered systems: {}", list(.known))]
    UnknownSystem {
        /// The enabled id.
        id: String,
        /// Every discovered id, sorted.
        known: Vec<String>,
    },
    /// A hard requirement names a system that was not discovered.
    #[error("'{plugin}' requires '{dependency}' {req} but no plugin '{dependency}' was found")]
    MissingDependency {
        /// The requiring system.
        plugin: String,
        /// The missing system.
        dependency: String,
        /// The requested versions.
        req: VersionReq,
    },
    /// A hard requirement names a system whose version does not match.
    #[error("'{plugin}' requires '{dependency}' {req}, found {dependency} {found}")]
    IncompatibleVersion {
        /// The requiring system.
        plugin: String,
        /// The required system.
        dependency: String,
        /// The requested versions.
        req: VersionReq,
        /// The version that was discovered.
        found: Version,
    },
    /// Systems that hard-require each other in a cycle (or a system requiring itself).
    #[error(
        "dependency cycle among {} (all hard requirements); make one of them a soft 'wants'",
        .members.join(", ")
    )]
    Cycle {
        /// Every member of the cycle, sorted.
        members: Vec<String>,
    },
    /// Two discovered systems share an id; the first one is kept.
    #[error("system id '{id}' was discovered more than once; only the first one is used")]
    DuplicateId {
        /// The duplicated id.
        id: String,
    },
}

/// Joins ids for a message, or says `(none)`.
fn list(ids: &[String]) -> String {
    if ids.is_empty() {
        "(none)".to_owned()
    } else {
        ids.join(", ")
    }
}

impl ResolveError {
    /// Deterministic sort key: unknown systems first, then by kind and names.
    fn sort_key(&self) -> (u8, String, String, String) {
        match self {
            ResolveError::UnknownSystem { id, .. } => (0, id.clone(), String::new(), String::new()),
            ResolveError::DuplicateId { id } => (1, id.clone(), String::new(), String::new()),
            ResolveError::MissingDependency {
                plugin,
                dependency,
                req,
            } => (2, plugin.clone(), dependency.clone(), req.to_string()),
            ResolveError::IncompatibleVersion {
                plugin,
                dependency,
                req,
                found,
            } => (
                3,
                plugin.clone(),
                dependency.clone(),
                format!("{req} {found}"),
            ),
            ResolveError::Cycle { members } => (4, members.join(","), String::new(), String::new()),
        }
    }
}

/// What happens to a system of the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The system is activated at this index of [`Plan::order`].
    Planned {
        /// Index in [`Plan::order`].
        order: usize,
    },
    /// The system cannot be activated because of this error.
    Failed(ResolveError),
    /// The system cannot be activated because a system it requires failed.
    Blocked {
        /// The failed system (alphabetically smallest) it transitively requires.
        by: String,
    },
}

/// A non-fatal observation, e.g. a soft dependency that is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The system the warning is about (the wanter).
    pub plugin: String,
    /// Human-readable explanation.
    pub message: String,
}

/// The result of [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Activation order of the activatable systems (dependencies first).
    pub order: Vec<String>,
    /// Why each system of the closure (planned, failed or blocked) is there.
    pub reasons: BTreeMap<String, Reason>,
    /// The outcome of each system of the closure.
    pub outcomes: BTreeMap<String, Outcome>,
    /// Every error, deduplicated and sorted (unknown systems first).
    pub problems: Vec<ResolveError>,
    /// Non-fatal observations, sorted by system and message.
    pub warnings: Vec<Warning>,
    /// Reverse hard edges within the closure: system -> systems that require it.
    required_by: BTreeMap<String, BTreeSet<String>>,
}

impl Plan {
    /// Every planned system that transitively hard-requires `id`, in activation order.
    ///
    /// When `id` fails at activation time, these are the systems to mark blocked.
    pub fn dependents_of(&self, id: &str) -> Vec<String> {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack = vec![id];
        while let Some(node) = stack.pop() {
            for dependent in self.required_by.get(node).into_iter().flatten() {
                if seen.insert(dependent) {
                    stack.push(dependent);
                }
            }
        }
        self.order
            .iter()
            .filter(|p| p.as_str() != id && seen.contains(p.as_str()))
            .cloned()
            .collect()
    }

    /// Deactivation order: the reverse of [`Plan::order`].
    pub fn deactivation_order(&self) -> Vec<String> {
        self.order.iter().rev().cloned().collect()
    }

    /// `true` when resolving found no problem (warnings do not count).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Computes the activation plan for `enabled` among the discovered `candidates`.
///
/// Never panics; the result does not depend on the order of `candidates` or `enabled`.
pub fn resolve(candidates: &[Candidate], enabled: &[String]) -> Plan {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();

    // Candidates by id, keeping the first of duplicates.
    let mut by_id: BTreeMap<&str, &Candidate> = BTreeMap::new();
    for c in candidates {
        if by_id.contains_key(c.id.as_str()) {
            problems.push(ResolveError::DuplicateId { id: c.id.clone() });
        } else {
            by_id.insert(&c.id, c);
        }
    }
    let find = |id: &str| by_id.get(id).copied();

    // Rule 1: enabled ids.
    let enabled: BTreeSet<&str> = enabled.iter().map(String::as_str).collect();
    let mut closure: BTreeSet<&str> = BTreeSet::new();
    // Breadth-first, so `depth` is each plugin's distance from the enabled set.
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    let mut queue: std::collections::VecDeque<&str> = std::collections::VecDeque::new();
    for &id in &enabled {
        match find(id) {
            Some(c) => {
                closure.insert(&c.id);
                depth.insert(&c.id, 0);
                queue.push_back(&c.id);
            }
            None => problems.push(ResolveError::UnknownSystem {
                id: id.to_owned(),
                known: by_id.keys().map(|k| (*k).to_owned()).collect(),
            }),
        }
    }

    // Rules 2 and 4: closure over matching requirements and wants.
    while let Some(id) = queue.pop_front() {
        let Some(c) = find(id) else { continue };
        let next_depth = depth.get(id).copied().unwrap_or(0) + 1;
        for dep in c.requires.iter().chain(&c.wants) {
            if let Some(d) = find(&dep.id) {
                if dep.req.matches(&d.version) && closure.insert(&d.id) {
                    depth.insert(&d.id, next_depth);
                    queue.push_back(&d.id);
                }
            }
        }
    }

    // Hard edges within the closure, direct failures (rule 3) and want warnings.
    let mut requires: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut required_by: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut wanted_by: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut direct: BTreeMap<&str, Vec<ResolveError>> = BTreeMap::new();
    for &id in &closure {
        let Some(c) = find(id) else { continue };
        requires.entry(id).or_default();
        for dep in &c.requires {
            let error = match find(&dep.id) {
                None => ResolveError::MissingDependency {
                    plugin: id.to_owned(),
                    dependency: dep.id.clone(),
                    req: dep.req.clone(),
                },
                Some(d) if !dep.req.matches(&d.version) => ResolveError::IncompatibleVersion {
                    plugin: id.to_owned(),
                    dependency: dep.id.clone(),
                    req: dep.req.clone(),
                    found: d.version.clone(),
                },
                Some(d) => {
                    requires.entry(id).or_default().insert(&d.id);
                    required_by.entry(&d.id).or_default().insert(id);
                    continue;
                }
            };
            direct.entry(id).or_default().push(error);
        }
        for want in &c.wants {
            let message = match find(&want.id) {
                None => format!(
                    "'{id}' wants '{}' {} but no plugin '{}' was found; continuing without it",
                    want.id, want.req, want.id
                ),
                Some(d) if !want.req.matches(&d.version) => format!(
                    "'{id}' wants '{}' {}, found {} {}; not activating it for this want",
                    want.id, want.req, want.id, d.version
                ),
                Some(d) => {
                    wanted_by.entry(&d.id).or_default().insert(id);
                    continue;
                }
            };
            warnings.push(Warning {
                plugin: id.to_owned(),
                message,
            });
        }
    }

    let mut failed: BTreeMap<&str, ResolveError> = BTreeMap::new();
    for (id, mut errors) in direct {
        errors.sort_by_key(ResolveError::sort_key);
        if let Some(first) = errors.first() {
            failed.insert(id, first.clone());
        }
        problems.extend(errors);
    }

    // Rule 5: hard cycles fail all of their members.
    // Explicit hasher: petgraph is built without its `std` feature.
    let mut graph: DiGraphMap<&str, (), RandomState> = DiGraphMap::new();
    for (&from, deps) in &requires {
        graph.add_node(from);
        for &to in deps {
            graph.add_edge(from, to, ());
        }
    }
    for scc in tarjan_scc(&graph) {
        let is_cycle = match scc.as_slice() {
            [single] => graph.contains_edge(single, single),
            _ => true,
        };
        if is_cycle {
            let mut members: Vec<String> = scc.iter().map(|m| (*m).to_owned()).collect();
            members.sort();
            let error = ResolveError::Cycle { members };
            for &m in &scc {
                failed.insert(m, error.clone());
            }
            problems.push(error);
        }
    }

    // Rule 6: blocking by the smallest failed system reachable over hard edges.
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut planned: BTreeSet<&str> = BTreeSet::new();
    for &id in &closure {
        if let Some(error) = failed.get(id) {
            outcomes.insert(id.to_owned(), Outcome::Failed(error.clone()));
            continue;
        }
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack = vec![id];
        while let Some(node) = stack.pop() {
            for &dep in requires.get(node).into_iter().flatten() {
                if seen.insert(dep) {
                    stack.push(dep);
                }
            }
        }
        match seen.into_iter().find(|dep| failed.contains_key(dep)) {
            Some(by) => {
                outcomes.insert(id.to_owned(), Outcome::Blocked { by: by.to_owned() });
            }
            None => {
                planned.insert(id);
            }
        }
    }

    // Rule 7: Kahn's algorithm with an alphabetical ready-queue.
    let mut pending: BTreeMap<&str, usize> = planned
        .iter()
        .map(|&id| {
            let deps = requires.get(id).into_iter().flatten();
            (id, deps.filter(|d| planned.contains(*d)).count())
        })
        .collect();
    let mut ready: BTreeSet<&str> = pending
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(&id, _)| id)
        .collect();
    let mut order: Vec<String> = Vec::new();
    while let Some(id) = ready.pop_first() {
        pending.remove(id);
        outcomes.insert(id.to_owned(), Outcome::Planned { order: order.len() });
        order.push(id.to_owned());
        for &dependent in required_by.get(id).into_iter().flatten() {
            if let Some(n) = pending.get_mut(dependent) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    ready.insert(dependent);
                }
            }
        }
    }
    // Unreachable in theory (cycles were removed above); kept so that no input can
    // leave a closure member without an outcome.
    if !pending.is_empty() {
        let error = ResolveError::Cycle {
            members: pending.keys().map(|k| (*k).to_owned()).collect(),
        };
        for &id in pending.keys() {
            outcomes.insert(id.to_owned(), Outcome::Failed(error.clone()));
        }
        problems.push(error);
    }

    // Rule 2: reasons.
    // Planned naming systems first, then the one closest to the enabled set
    // (the one that pulled it in), then the alphabetically smallest.
    let first_of = |map: &BTreeMap<&str, BTreeSet<&str>>, id: &str| {
        map.get(id)?
            .iter()
            .min_by_key(|b| {
                let planned = matches!(outcomes.get(**b), Some(Outcome::Planned { .. }));
                (!planned, depth.get(**b).copied().unwrap_or(usize::MAX), **b)
            })
            .map(|s| (*s).to_owned())
    };
    let mut reasons = BTreeMap::new();
    for &id in &closure {
        let reason = if enabled.contains(id) {
            Reason::Enabled
        } else if let Some(by) = first_of(&required_by, id) {
            Reason::RequiredBy(by)
        } else if let Some(by) = first_of(&wanted_by, id) {
            Reason::WantedBy(by)
        } else {
            // Unreachable: closure members are enabled, required or wanted.
            Reason::Enabled
        };
        reasons.insert(id.to_owned(), reason);
    }

    problems.sort_by_key(ResolveError::sort_key);
    problems.dedup();
    warnings.sort_by(|a, b| (&a.plugin, &a.message).cmp(&(&b.plugin, &b.message)));
    warnings.dedup();

    Plan {
        order,
        reasons,
        outcomes,
        problems,
        warnings,
        required_by: required_by
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect(),
    }
}

/// Kind of a dependency edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// Hard dependency (`requires`).
    Requires,
    /// Soft dependency (`wants`).
    Wants,
}

/// A dependency edge for display, from the dependent to the dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The dependent system.
    pub from: String,
    /// The dependency (which may not exist among the candidates).
    pub to: String,
    /// Hard or soft.
    pub kind: EdgeKind,
    /// The version requirement, as written (e.g. `^0.1`).
    pub req: String,
}

/// Every hard and soft edge among all candidates (not only the closure), sorted by
/// `(from, kind, to)`. Duplicate candidate ids contribute only their first occurrence.
pub fn edges(candidates: &[Candidate]) -> Vec<Edge> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for c in candidates {
        if !seen.insert(&c.id) {
            continue;
        }
        let hard = c.requires.iter().map(|d| (d, EdgeKind::Requires));
        let soft = c.wants.iter().map(|d| (d, EdgeKind::Wants));
        for (dep, kind) in hard.chain(soft) {
            out.push(Edge {
                from: c.id.clone(),
                to: dep.id.clone(),
                kind,
                req: dep.req.to_string(),
            });
        }
    }
    out.sort_by(|a, b| (&a.from, a.kind, &a.to, &a.req).cmp(&(&b.from, b.kind, &b.to, &b.req)));
    out.dedup();
    out
}

/// Renders the dependency graph of all candidates in Graphviz DOT.
///
/// Nodes are labelled `id\nversion` (missing dependencies are drawn dashed red);
/// edges point from dependent to dependency, solid for `requires` and dashed for
/// `wants`, labelled with the version requirement. The output is deterministic.
pub fn to_dot(candidates: &[Candidate]) -> String {
    let mut nodes: BTreeMap<&str, &Version> = BTreeMap::new();
    for c in candidates {
        nodes.entry(&c.id).or_insert(&c.version);
    }
    let all_edges = edges(candidates);
    let missing: BTreeSet<&str> = all_edges
        .iter()
        .map(|e| e.to.as_str())
        .filter(|to| !nodes.contains_key(to))
        .collect();

    let mut out = String::from("digraph systems {\n    node [shape=box];\n");
    for (id, version) in &nodes {
        let _ = writeln!(
            out,
            "    \"{0}\" [label=\"{0}\\n{1}\"];",
            escape(id),
            escape(&version.to_string())
        );
    }
    for id in &missing {
        let _ = writeln!(
            out,
            "    \"{0}\" [label=\"{0}\\n(missing)\", style=dashed, color=red];",
            escape(id)
        );
    }
    for e in &all_edges {
        let style = match e.kind {
            EdgeKind::Requires => "solid",
            EdgeKind::Wants => "dashed",
        };
        let _ = writeln!(
            out,
            "    \"{}\" -> \"{}\" [label=\"{}\", style={style}];",
            escape(&e.from),
            escape(&e.to),
            escape(&e.req)
        );
    }
    out.push_str("}\n");
    out
}

/// Escapes a string for use inside a double-quoted DOT identifier.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dep(id: &str, req: &str) -> Dep {
        Dep {
            id: id.to_owned(),
            req: VersionReq::parse(req).unwrap(),
        }
    }

    fn cand(
        id: &str,
        version: &str,
        requires: &[(&str, &str)],
        wants: &[(&str, &str)],
    ) -> Candidate {
        Candidate {
            id: id.to_owned(),
            version: Version::parse(version).unwrap(),
            requires: requires.iter().map(|(i, r)| dep(i, r)).collect(),
            wants: wants.iter().map(|(i, r)| dep(i, r)).collect(),
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn outcome<'a>(plan: &'a Plan, id: &str) -> &'a Outcome {
        plan.outcomes
            .get(id)
            .unwrap_or_else(|| panic!("no outcome for {id}"))
    }

    fn blocked(by: &str) -> Outcome {
        Outcome::Blocked { by: by.to_owned() }
    }

    fn system_graph() -> Vec<Candidate> {
        let base = ["license", "role", "permission", "group", "settings"];
        let mut all: Vec<Candidate> = base.iter().map(|id| cand(id, "0.1.0", &[], &[])).collect();
        let reqs: Vec<(&str, &str)> = base.iter().map(|id| (*id, "^0.1")).collect();
        all.push(cand("user", "0.1.0", &reqs, &[("session", "^0.1")]));
        all.push(cand(
            "session",
            "0.1.0",
            &[("user", "^0.1"), ("settings", "^0.1")],
            &[],
        ));
        all
    }

    #[test]
    fn real_system_graph() {
        let plan = resolve(&system_graph(), &ids(&["user"]));
        assert!(plan.is_ok(), "{:?}", plan.problems);
        assert!(plan.warnings.is_empty());
        assert_eq!(
            plan.order,
            ids(&[
                "group",
                "license",
                "permission",
                "role",
                "settings",
                "user",
                "session"
            ])
        );
        assert_eq!(plan.reasons["user"], Reason::Enabled);
        assert_eq!(plan.reasons["license"], Reason::RequiredBy("user".into()));
        // Both user and session require settings; user pulled it in.
        assert_eq!(plan.reasons["settings"], Reason::RequiredBy("user".into()));
        assert_eq!(plan.reasons["session"], Reason::WantedBy("user".into()));
        assert_eq!(*outcome(&plan, "session"), Outcome::Planned { order: 6 });
        assert_eq!(plan.dependents_of("role"), ids(&["user", "session"]));
        assert_eq!(plan.dependents_of("user"), ids(&["session"]));
        assert!(plan.dependents_of("session").is_empty());
        assert_eq!(
            plan.deactivation_order().first().map(String::as_str),
            Some("session")
        );
    }

    #[test]
    fn missing_dependency_blocks_dependents_only() {
        let cands = vec![
            cand("role", "1.0.0", &[("license", "^2")], &[]),
            cand("user", "1.0.0", &[("role", "*")], &[]),
            cand("audit", "1.0.0", &[("user", "*")], &[]),
            cand("settings", "1.0.0", &[], &[]),
        ];
        let plan = resolve(&cands, &ids(&["audit", "settings"]));
        let error = ResolveError::MissingDependency {
            plugin: "role".into(),
            dependency: "license".into(),
            req: VersionReq::parse("^2").unwrap(),
        };
        assert_eq!(
            error.to_string(),
            "'role' requires 'license' ^2 but no plugin 'license' was found"
        );
        assert_eq!(plan.problems, vec![error.clone()]);
        assert_eq!(*outcome(&plan, "role"), Outcome::Failed(error));
        assert_eq!(*outcome(&plan, "user"), blocked("role"));
        assert_eq!(*outcome(&plan, "audit"), blocked("role"));
        assert_eq!(plan.order, ids(&["settings"]));
        assert_eq!(plan.reasons["role"], Reason::RequiredBy("user".into()));
        assert!(!plan.is_ok());
    }

    #[test]
    fn incompatible_version() {
        let cands = vec![
            cand("license", "1.7.3", &[], &[]),
            cand("role", "1.0.0", &[("license", "^2")], &[]),
        ];
        let plan = resolve(&cands, &ids(&["role"]));
        let error = ResolveError::IncompatibleVersion {
            plugin: "role".into(),
            dependency: "license".into(),
            req: VersionReq::parse("^2").unwrap(),
            found: Version::parse("1.7.3").unwrap(),
        };
        assert_eq!(
            error.to_string(),
            "'role' requires 'license' ^2, found license 1.7.3"
        );
        assert_eq!(plan.problems, vec![error.clone()]);
        assert_eq!(*outcome(&plan, "role"), Outcome::Failed(error));
        // The incompatible system is not pulled in by the failed requirement.
        assert!(!plan.outcomes.contains_key("license"));
        assert!(plan.order.is_empty());
    }

    #[test]
    fn hard_cycle_of_three() {
        let cands = vec![
            cand("role", "1.0.0", &[("permission", "*")], &[]),
            cand("permission", "1.0.0", &[("group", "*")], &[]),
            cand("group", "1.0.0", &[("role", "*")], &[]),
            cand("user", "1.0.0", &[("role", "*")], &[]),
            cand("settings", "1.0.0", &[], &[]),
        ];
        let plan = resolve(&cands, &ids(&["user", "settings"]));
        let error = ResolveError::Cycle {
            members: ids(&["group", "permission", "role"]),
        };
        assert_eq!(
            error.to_string(),
            "dependency cycle among group, permission, role (all hard requirements); \
             make one of them a soft 'wants'"
        );
        assert_eq!(plan.problems, vec![error.clone()]);
        for id in ["group", "permission", "role"] {
            assert_eq!(*outcome(&plan, id), Outcome::Failed(error.clone()));
        }
        assert_eq!(*outcome(&plan, "user"), blocked("group"));
        assert_eq!(plan.order, ids(&["settings"]));
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let cands = vec![
            cand("narcissus", "1.0.0", &[("narcissus", "*")], &[]),
            cand("echo", "1.0.0", &[("narcissus", "*")], &[]),
        ];
        let plan = resolve(&cands, &ids(&["echo"]));
        let error = ResolveError::Cycle {
            members: ids(&["narcissus"]),
        };
        assert_eq!(plan.problems, vec![error.clone()]);
        assert_eq!(*outcome(&plan, "narcissus"), Outcome::Failed(error));
        assert_eq!(*outcome(&plan, "echo"), blocked("narcissus"));
        assert!(plan.order.is_empty());
    }

    #[test]
    fn soft_edge_never_closes_a_cycle() {
        let cands = vec![
            cand("b", "1.0.0", &[("a", "*")], &[]),
            cand("a", "1.0.0", &[], &[("b", "*")]),
        ];
        for enabled in [ids(&["a"]), ids(&["b"]), ids(&["a", "b"])] {
            let plan = resolve(&cands, &enabled);
            assert!(plan.is_ok(), "{:?}", plan.problems);
            assert_eq!(plan.order, ids(&["a", "b"]));
        }
        let plan = resolve(&cands, &ids(&["a"]));
        assert_eq!(plan.reasons["b"], Reason::WantedBy("a".into()));
        assert_eq!(plan.dependents_of("a"), ids(&["b"]));
        assert!(plan.dependents_of("b").is_empty());
    }

    #[test]
    fn order_independent_of_input_order() {
        let cands = system_graph();
        let enabled = ids(&["user"]);
        let expected = resolve(&cands, &enabled);
        let n = cands.len();
        for rotation in 0..n {
            let mut shuffled = cands.clone();
            shuffled.rotate_left(rotation);
            assert_eq!(resolve(&shuffled, &enabled), expected);
            shuffled.reverse();
            assert_eq!(resolve(&shuffled, &enabled), expected);
            // Interleave: odd positions first, then even ones.
            let interleaved: Vec<Candidate> = shuffled
                .iter()
                .skip(1)
                .step_by(2)
                .chain(shuffled.iter().step_by(2))
                .cloned()
                .collect();
            assert_eq!(resolve(&interleaved, &enabled), expected);
        }
        let all = ids(&["session", "user", "role"]);
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(resolve(&cands, &all), resolve(&cands, &reversed));
    }

    #[test]
    fn failure_blocks_dependents_only() {
        let cands = vec![
            cand("base", "1.0.0", &[], &[]),
            cand("broken", "1.0.0", &[("base", "*"), ("ghost", "*")], &[]),
            cand("needs_broken", "1.0.0", &[("broken", "*")], &[]),
            cand(
                "wants_broken",
                "1.0.0",
                &[("base", "*")],
                &[("broken", "*")],
            ),
            cand("sibling", "1.0.0", &[("base", "*")], &[]),
        ];
        let plan = resolve(&cands, &ids(&["needs_broken", "wants_broken", "sibling"]));
        assert!(matches!(
            outcome(&plan, "broken"),
            Outcome::Failed(ResolveError::MissingDependency { .. })
        ));
        assert_eq!(*outcome(&plan, "needs_broken"), blocked("broken"));
        assert_eq!(plan.order, ids(&["base", "sibling", "wants_broken"]));
        // Planned requirers are preferred to failed or blocked ones.
        assert_eq!(plan.reasons["base"], Reason::RequiredBy("sibling".into()));
        assert_eq!(
            plan.reasons["broken"],
            Reason::RequiredBy("needs_broken".into())
        );
    }

    #[test]
    fn reason_falls_back_to_failed_requirer() {
        let cands = vec![
            cand("base", "1.0.0", &[], &[]),
            cand("broken", "1.0.0", &[("base", "*"), ("ghost", "*")], &[]),
        ];
        let plan = resolve(&cands, &ids(&["broken"]));
        assert_eq!(plan.reasons["base"], Reason::RequiredBy("broken".into()));
        assert_eq!(plan.order, ids(&["base"]));
    }

    #[test]
    fn failing_wanted_system_leaves_wanter_alone() {
        let cands = vec![
            cand("app", "1.0.0", &[], &[("extra", "*")]),
            cand("extra", "1.0.0", &[("ghost", "*")], &[]),
        ];
        let plan = resolve(&cands, &ids(&["app"]));
        assert_eq!(plan.order, ids(&["app"]));
        assert!(matches!(outcome(&plan, "extra"), Outcome::Failed(_)));
        assert_eq!(plan.reasons["extra"], Reason::WantedBy("app".into()));
        assert_eq!(plan.problems.len(), 1);
    }

    #[test]
    fn blocked_by_smallest_root_failure() {
        let cands = vec![
            cand("top", "1.0.0", &[("zeta", "*"), ("mid", "*")], &[]),
            cand("mid", "1.0.0", &[("alpha", "*")], &[]),
            cand("alpha", "1.0.0", &[("nothere", "*")], &[]),
            cand("zeta", "1.0.0", &[("nothere", "*")], &[]),
        ];
        let plan = resolve(&cands, &ids(&["top"]));
        assert_eq!(*outcome(&plan, "mid"), blocked("alpha"));
        assert_eq!(*outcome(&plan, "top"), blocked("alpha"));
        assert_eq!(plan.problems.len(), 2);
    }

    #[test]
    fn wanted_but_missing_is_a_warning() {
        let cands = vec![cand("user", "0.1.0", &[], &[("session", "^0.1")])];
        let plan = resolve(&cands, &ids(&["user"]));
        assert!(plan.is_ok());
        assert_eq!(plan.order, ids(&["user"]));
        assert_eq!(plan.warnings.len(), 1);
        assert_eq!(plan.warnings[0].plugin, "user");
        assert!(
            plan.warnings[0].message.contains("'session'"),
            "{}",
            plan.warnings[0].message
        );
    }

    #[test]
    fn wanted_with_incompatible_version_not_added() {
        let cands = vec![
            cand("user", "0.1.0", &[], &[("session", "^2")]),
            cand("session", "0.1.0", &[], &[]),
        ];
        let plan = resolve(&cands, &ids(&["user"]));
        assert!(plan.is_ok());
        assert_eq!(plan.order, ids(&["user"]));
        assert!(!plan.outcomes.contains_key("session"));
        assert_eq!(plan.warnings.len(), 1);
        assert!(
            plan.warnings[0].message.contains("0.1.0"),
            "{}",
            plan.warnings[0].message
        );
    }

    #[test]
    fn unknown_enabled_system() {
        let cands = vec![
            cand("user", "0.1.0", &[], &[]),
            cand("group", "0.1.0", &[("ghost", "*")], &[]),
        ];
        let plan = resolve(&cands, &ids(&["usr", "user", "group"]));
        let error = ResolveError::UnknownSystem {
            id: "usr".into(),
            known: ids(&["group", "user"]),
        };
        assert_eq!(
            error.to_string(),
            "enabled system 'usr' was not found; discovered systems: group, user"
        );
        assert_eq!(plan.problems.len(), 2);
        assert_eq!(plan.problems[0], error, "unknown systems come first");
        assert_eq!(plan.order, ids(&["user"]));
        assert!(!plan.outcomes.contains_key("usr"));
        let empty = resolve(&[], &ids(&["x"]));
        assert_eq!(
            empty.problems[0].to_string(),
            "enabled system 'x' was not found; discovered systems: (none)"
        );
    }

    #[test]
    fn duplicate_id_keeps_first() {
        let cands = vec![
            cand("user", "1.0.0", &[], &[]),
            cand("user", "2.0.0", &[("ghost", "*")], &[]),
            cand("user", "3.0.0", &[], &[]),
        ];
        let plan = resolve(&cands, &ids(&["user"]));
        assert_eq!(
            plan.problems,
            vec![ResolveError::DuplicateId { id: "user".into() }]
        );
        assert_eq!(plan.order, ids(&["user"]));
        assert_eq!(edges(&cands).len(), 0);
    }

    #[test]
    fn reason_display() {
        assert_eq!(Reason::Enabled.to_string(), "enabled");
        assert_eq!(
            Reason::RequiredBy("user".into()).to_string(),
            "required by user"
        );
        assert_eq!(
            Reason::WantedBy("user".into()).to_string(),
            "wanted by user"
        );
    }

    #[test]
    fn edges_and_dot() {
        let mut cands = system_graph();
        cands.push(cand("audit", "0.2.0", &[("ghost", ">=1")], &[]));
        let all = edges(&cands);
        assert_eq!(all.len(), 9);
        assert_eq!(all[0].from, "audit");
        let session: Vec<&Edge> = all.iter().filter(|e| e.from == "session").collect();
        assert_eq!(session.len(), 2);
        let user: Vec<(&str, EdgeKind)> = all
            .iter()
            .filter(|e| e.from == "user")
            .map(|e| (e.to.as_str(), e.kind))
            .collect();
        assert_eq!(user.last(), Some(&("session", EdgeKind::Wants)));
        assert_eq!(user[0], ("group", EdgeKind::Requires));

        let dot = to_dot(&cands);
        assert!(dot.starts_with("digraph"));
        assert!(dot.contains("\"user\" [label=\"user\\n0.1.0\"];"), "{dot}");
        assert!(dot.contains("\"user\" -> \"license\" [label=\"^0.1\", style=solid];"));
        assert!(dot.contains("\"user\" -> \"session\" [label=\"^0.1\", style=dashed];"));
        assert!(dot.contains("\"session\" -> \"user\" [label=\"^0.1\", style=solid];"));
        assert!(dot.contains("\"ghost\" [label=\"ghost\\n(missing)\""));
        assert!(dot.trim_end().ends_with('}'));
        let mut reversed = cands.clone();
        reversed.reverse();
        assert_eq!(to_dot(&reversed), dot);
    }

    // ---- property tests ----

    const VERSIONS: [&str; 3] = ["0.1.0", "1.0.0", "2.3.0"];
    const REQS: [&str; 5] = ["*", "*", "^1", "^0.1", ">=1"];

    /// (from, to, hard, req index); `to == n` names a missing system.
    type RawEdge = (usize, usize, bool, usize);

    fn name(i: usize) -> String {
        format!("s{i:02}")
    }

    fn build(
        n: usize,
        versions: &[usize],
        raw: &[RawEdge],
        enabled: &[usize],
        dag: bool,
    ) -> (Vec<Candidate>, Vec<String>) {
        let mut cands: Vec<Candidate> = (0..n)
            .map(|i| Candidate {
                id: name(i),
                version: Version::parse(VERSIONS[versions[i] % VERSIONS.len()]).unwrap(),
                requires: Vec::new(),
                wants: Vec::new(),
            })
            .collect();
        for &(from, to, hard, req) in raw {
            if dag && hard && to < n && to >= from {
                continue;
            }
            let d = dep(&name(to), REQS[req % REQS.len()]);
            if hard {
                cands[from].requires.push(d);
            } else {
                cands[from].wants.push(d);
            }
        }
        (cands, enabled.iter().map(|&i| name(i)).collect())
    }

    fn graphs(dag: bool) -> impl Strategy<Value = (Vec<Candidate>, Vec<Candidate>, Vec<String>)> {
        (1usize..=12)
            .prop_flat_map(|n| {
                (
                    Just(n),
                    prop::collection::vec(0..VERSIONS.len(), n),
                    prop::collection::vec((0..n, 0..=n, any::<bool>(), 0..REQS.len()), 0..=3 * n),
                    prop::collection::vec(0..=n, 0..=n),
                )
            })
            .prop_flat_map(move |(n, versions, raw, enabled)| {
                let (cands, enabled) = build(n, &versions, &raw, &enabled, dag);
                (
                    Just(cands.clone()),
                    Just(cands).prop_shuffle(),
                    Just(enabled),
                )
            })
    }

    fn check_invariants(cands: &[Candidate], enabled: &[String], plan: &Plan) {
        let by_id: BTreeMap<&str, &Candidate> = cands.iter().map(|c| (c.id.as_str(), c)).collect();
        let position: BTreeMap<&str, usize> = plan
            .order
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_str(), i))
            .collect();
        assert_eq!(position.len(), plan.order.len(), "duplicate in order");
        assert_eq!(
            plan.reasons.keys().collect::<Vec<_>>(),
            plan.outcomes.keys().collect::<Vec<_>>(),
            "reasons and outcomes cover the same closure"
        );
        let planned = plan
            .outcomes
            .values()
            .filter(|o| matches!(o, Outcome::Planned { .. }))
            .count();
        assert_eq!(planned, plan.order.len());
        for (id, o) in &plan.outcomes {
            match o {
                Outcome::Planned { order } => assert_eq!(plan.order.get(*order), Some(id)),
                Outcome::Failed(_) => assert!(!position.contains_key(id.as_str())),
                Outcome::Blocked { by } => {
                    assert!(!position.contains_key(id.as_str()));
                    assert!(matches!(plan.outcomes.get(by), Some(Outcome::Failed(_))));
                }
            }
            // The closure is closed under matching hard and soft dependencies.
            let c = by_id[id.as_str()];
            for d in c.requires.iter().chain(&c.wants) {
                if let Some(t) = by_id.get(d.id.as_str()) {
                    if d.req.matches(&t.version) {
                        assert!(
                            plan.outcomes.contains_key(&d.id),
                            "{id} -> {} not in closure",
                            d.id
                        );
                    }
                }
            }
        }
        for (i, id) in plan.order.iter().enumerate() {
            let c = by_id[id.as_str()];
            for d in &c.requires {
                let t = by_id
                    .get(d.id.as_str())
                    .expect("dependency of a planned system exists");
                assert!(d.req.matches(&t.version));
                let at = position.get(d.id.as_str()).expect("dependency planned");
                assert!(*at < i, "{} must come before {id}", d.id);
            }
            for dependent in plan.dependents_of(id) {
                assert!(position[dependent.as_str()] > i);
            }
        }
        for id in enabled {
            if by_id.contains_key(id.as_str()) {
                assert_eq!(plan.reasons.get(id), Some(&Reason::Enabled));
            } else {
                assert!(plan
                    .problems
                    .iter()
                    .any(|p| matches!(p, ResolveError::UnknownSystem { id: u, .. } if u == id)));
            }
        }
        assert_eq!(plan.is_ok(), plan.problems.is_empty());
    }

    proptest! {
        #[test]
        fn random_dags((cands, shuffled, enabled) in graphs(true)) {
            let plan = resolve(&cands, &enabled);
            check_invariants(&cands, &enabled, &plan);
            let cycles = plan.problems.iter().filter(|p| matches!(p, ResolveError::Cycle { .. }));
            prop_assert_eq!(cycles.count(), 0);
            prop_assert_eq!(resolve(&shuffled, &enabled), plan);
        }

        #[test]
        fn random_graphs((cands, shuffled, enabled) in graphs(false)) {
            let plan = resolve(&cands, &enabled);
            check_invariants(&cands, &enabled, &plan);
            prop_assert_eq!(resolve(&shuffled, &enabled), plan.clone());
            let mut reversed = enabled.clone();
            reversed.reverse();
            prop_assert_eq!(resolve(&cands, &reversed), plan);
            let _ = to_dot(&cands);
        }
    }
}
