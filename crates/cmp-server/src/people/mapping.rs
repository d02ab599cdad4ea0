//! From a provider's groups to a CMP role and owners: the strongest mapped role wins, a team
//! group makes its members developers of that owner, and a person with neither is refused.

use std::collections::BTreeMap;

use cmp_domain::Role;

/// A provider's group mapping (`auth.oidc.providers.*.roles` and `.teams`).
#[derive(Debug, Clone, Default)]
pub struct GroupMapping {
    pub roles: BTreeMap<String, Role>,
    pub teams: BTreeMap<String, String>,
}

/// What a person's groups give, owners still by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub role: Role,
    /// Owner names (for developers; empty for roles that see everything).
    pub teams: Vec<String>,
}

impl GroupMapping {
    /// The role and teams `groups` give; `None` when they give nothing.
    pub fn grant(&self, groups: &[String]) -> Option<Granted> {
        let strongest = groups
            .iter()
            .filter_map(|g| self.roles.get(g).copied())
            .min_by_key(|role| strength_rank(*role));
        let mut teams: Vec<String> =
            groups.iter().filter_map(|g| self.teams.get(g).cloned()).collect();
        teams.sort();
        teams.dedup();
        match strongest {
            Some(role @ (Role::Admin | Role::Security)) => Some(Granted { role, teams: vec![] }),
            Some(Role::Developer) => Some(Granted { role: Role::Developer, teams }),
            // Configuration refuses agent mappings; a team alone makes a developer.
            Some(Role::Agent) | None if !teams.is_empty() => {
                Some(Granted { role: Role::Developer, teams })
            }
            Some(Role::Agent) | None => None,
        }
    }
}

/// Lower is stronger.
fn strength_rank(role: Role) -> u8 {
    match role {
        Role::Admin => 0,
        Role::Security => 1,
        Role::Developer => 2,
        Role::Agent => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> GroupMapping {
        GroupMapping {
            roles: [("cmp-admins", Role::Admin), ("cmp-security", Role::Security)]
                .map(|(g, r)| (g.to_string(), r))
                .into(),
            teams: [("team-a", "payments"), ("team-b", "search"), ("team-a2", "payments")]
                .map(|(g, t)| (g.to_string(), t.to_string()))
                .into(),
        }
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_strongest_role_wins_and_teams_make_developers() {
        let m = mapping();
        let admin = m.grant(&groups(&["team-a", "cmp-security", "cmp-admins"])).unwrap();
        assert_eq!(admin, Granted { role: Role::Admin, teams: vec![] });
        let dev = m.grant(&groups(&["team-b", "team-a", "team-a2", "other"])).unwrap();
        assert_eq!(dev.role, Role::Developer);
        assert_eq!(dev.teams, vec!["payments".to_string(), "search".to_string()]);
        assert_eq!(m.grant(&groups(&["other"])), None);
        assert_eq!(m.grant(&[]), None);
    }
}
