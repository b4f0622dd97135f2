//! Where a rank learns its place in the job: the variables `torchrun` sets for its workers, which
//! `init_process_group(init_method="env://")` reads.

use anyhow::{bail, ensure, Context, Result};

/// One rank's place in a distributed job, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// This process's rank, 0..world_size (`RANK`).
    pub rank: usize,
    /// The number of ranks (`WORLD_SIZE`).
    pub world_size: usize,
    /// This process's rank on its machine (`LOCAL_RANK`; the rank when unset).
    pub local_rank: usize,
    /// The host of the job's store (`MASTER_ADDR`).
    pub master_addr: String,
    /// Its port (`MASTER_PORT`).
    pub master_port: u16,
    /// Whether torchrun's agent hosts the store, so every rank connects as a client
    /// (`TORCHELASTIC_USE_AGENT_STORE=True`); otherwise rank 0 hosts it, as env:// does.
    pub agent_store: bool,
    /// How many times torchrun has restarted the job (`TORCHELASTIC_RESTART_COUNT`; 0 unset).
    pub restart_count: usize,
}

impl Launch {
    /// This process's place, when `RANK` or `WORLD_SIZE` is set (as torchrun sets them); `None`
    /// for a single-process run. A malformed or inconsistent variable is an error naming it.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] over the variables `var` gives.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let (rank, world_size) = (var("RANK"), var("WORLD_SIZE"));
        if rank.is_none() && world_size.is_none() {
            return Ok(None);
        }
        let number = |name: &str, value: Option<String>| -> Result<usize> {
            let Some(value) = value else {
                bail!("{name} is not set, but {} is: set both (torchrun does)", other(name))
            };
            value.trim().parse().with_context(|| format!("{name} must be a whole number, got {value:?}"))
        };
        let rank = number("RANK", rank)?;
        let world_size = number("WORLD_SIZE", world_size)?;
        ensure!(world_size >= 1, "WORLD_SIZE must be at least 1, got 0");
        ensure!(rank < world_size, "RANK {rank} is out of range for WORLD_SIZE {world_size}");
        let local_rank = var("LOCAL_RANK").map_or(Ok(rank), |v| number("LOCAL_RANK", Some(v)))?;
        let Some(master_addr) = var("MASTER_ADDR").filter(|a| !a.trim().is_empty()) else {
            bail!("MASTER_ADDR is not set: launch with torchrun, or set MASTER_ADDR and MASTER_PORT")
        };
        let Some(port) = var("MASTER_PORT") else {
            bail!("MASTER_PORT is not set: launch with torchrun, or set MASTER_ADDR and MASTER_PORT")
        };
        let master_port = port
            .trim()
            .parse()
            .ok()
            .filter(|&p: &u16| p > 0)
            .with_context(|| format!("MASTER_PORT must be a port number (1-65535), got {port:?}"))?;
        let restart_count = var("TORCHELASTIC_RESTART_COUNT")
            .map_or(Ok(0), |v| number("TORCHELASTIC_RESTART_COUNT", Some(v)))?;
        Ok(Some(Self {
            rank,
            world_size,
            local_rank,
            master_addr: master_addr.trim().to_owned(),
            master_port,
            // torch.distributed.elastic: `os.environ.get(...) == str(True)`.
            agent_store: var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True"),
            restart_count,
        }))
    }

    /// Whether this rank writes what a job writes once (checkpoints, reports): rank 0.
    pub fn is_leader(&self) -> bool {
        self.rank == 0
    }
}

/// The variable that goes with `name` (RANK with WORLD_SIZE).
fn other(name: &str) -> &'static str {
    if name == "RANK" {
        "WORLD_SIZE"
    } else {
        "RANK"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn launch(vars: &[(&str, &str)]) -> Result<Option<Launch>> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Launch::from_vars(|name| vars.get(name).cloned())
    }

    const TORCHRUN: [(&str, &str); 7] = [
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "127.0.0.1"),
        ("MASTER_PORT", "29500"),
        ("TORCHELASTIC_USE_AGENT_STORE", "True"),
        ("TORCHELASTIC_RESTART_COUNT", "2"),
    ];

    #[test]
    fn torchruns_variables_give_the_ranks_place() {
        assert_eq!(launch(&[]).unwrap(), None);
        let l = launch(&TORCHRUN).unwrap().unwrap();
        assert_eq!((l.rank, l.world_size, l.local_rank, l.master_port, l.restart_count), (1, 2, 1, 29500, 2));
        assert!(l.agent_store && !l.is_leader());
        // env:// by hand: rank 0 hosts the store.
        let l = launch(&[("RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")])
            .unwrap();
        let l = l.unwrap();
        assert!(!l.agent_store && l.is_leader() && l.local_rank == 0);
    }

    #[test]
    fn a_bad_variable_is_named() {
        let with = |name: &str, value: &str| {
            let vars: Vec<(&str, &str)> =
                TORCHRUN.iter().map(|&(k, v)| if k == name { (k, value) } else { (k, v) }).collect();
            launch(&vars).unwrap_err().to_string()
        };
        assert!(with("RANK", "x").contains("RANK must be a whole number"));
        assert!(with("RANK", "2").contains("RANK 2 is out of range for WORLD_SIZE 2"));
        assert!(with("WORLD_SIZE", "0").contains("WORLD_SIZE must be at least 1"));
        assert!(with("MASTER_PORT", "70000").contains("MASTER_PORT must be a port number"));
        assert!(with("MASTER_ADDR", " ").contains("MASTER_ADDR is not set"));
        let e = launch(&[("RANK", "0")]).unwrap_err().to_string();
        assert!(e.contains("WORLD_SIZE is not set, but RANK is"), "{e}");
    }
}
