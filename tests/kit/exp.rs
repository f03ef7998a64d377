//! Experiment files for tests, built rather than pasted: the header, the spec's sections
//! in a fixed order, list entries (services, probes, faults) as block mappings, and
//! everything inside them as YAML flow text the test writes as a user would. Only what
//! the tests use; a test that needs an exact or broken file keeps its literal text.

use std::fmt;

/// A YAML mapping built in order: as a list entry it is rendered in block style, as a
/// value in flow style (`{ key: value, ... }`). Values are YAML text: scalars or flow
/// collections, one line each.
#[derive(Clone, Debug, Default)]
pub struct Map(Vec<(String, String)>);

impl Map {
    /// A mapping whose first key is `name`.
    pub fn named(name: &str) -> Map {
        Map::default().with("name", name)
    }

    /// `key: value`, replacing an earlier value of `key` in place.
    pub fn with(mut self, key: &str, value: impl fmt::Display) -> Map {
        let value = value.to_string();
        assert!(
            !value.contains('\n'),
            "{key}: one line of YAML, not {value:?}"
        );
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
        self
    }

    /// The mapping as an entry of a list indented by `indent` spaces.
    fn block_entry(&self, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        for (i, (key, value)) in self.0.iter().enumerate() {
            let lead = if i == 0 { "- " } else { "  " };
            out.push_str(&format!("{pad}{lead}{key}: {value}\n"));
        }
    }
}

impl fmt::Display for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        write!(f, "{{ {} }}", fields.join(", "))
    }
}

/// `text` as a double-quoted YAML scalar (URLs, addresses, paths).
pub fn quoted(text: impl fmt::Display) -> String {
    let text = text.to_string().replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{text}\"")
}

/// An experiment file: `Experiment::new(name, duration)`, then its sections; `Display`
/// gives the YAML.
#[derive(Clone, Debug)]
pub struct Experiment {
    name: String,
    duration: String,
    seed: Option<u64>,
    kubernetes: Option<String>,
    agents: Map,
    services: Vec<Map>,
    probes: Vec<Map>,
    steady_state: Option<String>,
    faults: Vec<Map>,
    objectives: Map,
    abort: Map,
    /// Other `spec` keys (`prometheus`, `alerts`...), each a flow value.
    extra: Map,
}

impl Experiment {
    pub fn new(name: &str, duration: &str) -> Experiment {
        Experiment {
            name: name.into(),
            duration: duration.into(),
            seed: None,
            kubernetes: None,
            agents: Map::default(),
            services: Vec::new(),
            probes: Vec::new(),
            steady_state: None,
            faults: Vec::new(),
            objectives: Map::default(),
            abort: Map::default(),
            extra: Map::default(),
        }
    }

    pub fn seed(mut self, seed: u64) -> Experiment {
        self.seed = Some(seed);
        self
    }

    /// `spec.kubernetes`, a flow mapping (replaces an earlier one).
    pub fn kubernetes(mut self, flow: impl fmt::Display) -> Experiment {
        self.kubernetes = Some(flow.to_string());
        self
    }

    /// A named agent under `spec.agents`.
    pub fn agent(mut self, name: &str, flow: impl fmt::Display) -> Experiment {
        self.agents = self.agents.with(name, flow);
        self
    }

    pub fn service(mut self, service: Map) -> Experiment {
        self.services.push(service);
        self
    }

    pub fn probe(mut self, probe: Map) -> Experiment {
        self.probes.push(probe);
        self
    }

    /// `spec.steadyState`, a flow mapping.
    pub fn steady_state(mut self, flow: impl fmt::Display) -> Experiment {
        self.steady_state = Some(flow.to_string());
        self
    }

    pub fn fault(mut self, fault: Map) -> Experiment {
        self.faults.push(fault);
        self
    }

    /// One objective under `spec.objectives` (`rto`, `availability`, `podRecovery`...).
    pub fn objective(mut self, kind: &str, flow: impl fmt::Display) -> Experiment {
        self.objectives = self.objectives.with(kind, flow);
        self
    }

    /// Any other key of `spec` (`prometheus`, `alertmanager`, `alerts`), a flow value.
    pub fn spec(mut self, key: &str, flow: impl fmt::Display) -> Experiment {
        self.extra = self.extra.with(key, flow);
        self
    }

    /// One stop condition under `spec.abort`.
    pub fn abort(mut self, kind: &str, flow: impl fmt::Display) -> Experiment {
        self.abort = self.abort.with(kind, flow);
        self
    }
}

impl fmt::Display for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut y = format!(
            "apiVersion: shakeout/v1\nkind: Experiment\nmetadata: {{ name: {} }}\nspec:\n  duration: {}\n",
            self.name, self.duration
        );
        if let Some(seed) = self.seed {
            y.push_str(&format!("  seed: {seed}\n"));
        }
        if let Some(k) = &self.kubernetes {
            y.push_str(&format!("  kubernetes: {k}\n"));
        }
        let mapping = |y: &mut String, key: &str, map: &Map| {
            if !map.0.is_empty() {
                y.push_str(&format!("  {key}:\n"));
                for (k, v) in &map.0 {
                    y.push_str(&format!("    {k}: {v}\n"));
                }
            }
        };
        let list = |y: &mut String, key: &str, entries: &[Map]| {
            if !entries.is_empty() {
                y.push_str(&format!("  {key}:\n"));
                for e in entries {
                    e.block_entry(4, y);
                }
            }
        };
        mapping(&mut y, "agents", &self.agents);
        list(&mut y, "services", &self.services);
        list(&mut y, "probes", &self.probes);
        if let Some(s) = &self.steady_state {
            y.push_str(&format!("  steadyState: {s}\n"));
        }
        list(&mut y, "faults", &self.faults);
        mapping(&mut y, "objectives", &self.objectives);
        mapping(&mut y, "abort", &self.abort);
        for (k, v) in &self.extra.0 {
            y.push_str(&format!("  {k}: {v}\n"));
        }
        f.write_str(&y)
    }
}

/// The sample service (`shakeout sample-service`) on 127.0.0.1:`port`, named `sample`,
/// ready when `/health` answers (within 5 s).
pub fn sample_service(port: u16) -> Map {
    Map::named("sample")
        .with(
            "command",
            format!("[\"${{exe}}\", sample-service, --listen, \"127.0.0.1:{port}\"]"),
        )
        .with(
            "ready",
            format!("{{ http: \"http://127.0.0.1:{port}/health\", within: 5s }}"),
        )
}

/// The probe `health`: GET http://127.0.0.1:`port`/health, 300 ms timeout, at `rate`.
pub fn health_probe(port: u16, rate: &str) -> Map {
    Map::named("health")
        .with(
            "http",
            format!("{{ url: \"http://127.0.0.1:{port}/health\", timeout: 300ms }}"),
        )
        .with("rate", rate)
}

/// A TCP probe of `address` (`host:port`) at `rate`.
pub fn tcp_probe(name: &str, address: impl fmt::Display, rate: &str) -> Map {
    Map::named(name)
        .with("tcp", Map::default().with("address", quoted(address)))
        .with("rate", rate)
}

/// A fault applied `at` the given time into the run; its action and duration follow.
pub fn fault(name: &str, at: &str) -> Map {
    Map::named(name).with("at", at)
}

/// A node agent at `url` whose token comes from `AGENT_TOKEN`.
pub fn node_agent(url: impl fmt::Display) -> Map {
    Map::default()
        .with("url", quoted(url))
        .with("tokenFrom", "{ env: AGENT_TOKEN }")
}
