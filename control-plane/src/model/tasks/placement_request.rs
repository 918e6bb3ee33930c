//! Where RunTask and StartTask put each task: by the request's placement strategies and
//! constraints (as a service's are checked and applied), or on the container instances StartTask
//! names, one each.

use crate::state::error::{Error, FieldError, Result};
use berth_core::arn;
use berth_core::scheduler::{
    self, Constraint, Demand, NodeSnapshot, PlacementRequest, Rejection, Strategy,
};
use berth_proto::v1::RunTaskRequest;

/// The request's placement, checked; every bad entry is reported with its path.
#[derive(Clone)]
pub struct Placement {
    strategies: Vec<Strategy>,
    constraints: Vec<Constraint>,
    /// StartTask's nodes, by id, name or ARN.
    instances: Vec<String>,
}

impl Placement {
    pub fn of(req: &RunTaskRequest) -> Result<Self> {
        let mut errs = Vec::new();
        let mut strategies = Vec::new();
        for (i, s) in req.placement_strategy.iter().enumerate() {
            match scheduler::parse_strategy(&s.r#type, &s.field) {
                Ok(s) => strategies.push(s),
                Err(e) => errs.push(FieldError::new(format!("placementStrategy[{i}]"), e)),
            }
        }
        let mut constraints = Vec::new();
        for (i, c) in req.placement_constraints.iter().enumerate() {
            match scheduler::parse_constraint_at(i, &c.r#type, &c.expression) {
                Ok(c) => constraints.push(c),
                Err(e) => errs.push(e),
            }
        }
        if !errs.is_empty() {
            return Err(Error::Invalid(errs));
        }
        Ok(Self {
            strategies,
            constraints,
            instances: req.container_instances.clone(),
        })
    }

    /// The same placement, also held to `extra` constraints (the task definition's own).
    pub fn requiring(&self, extra: Vec<Constraint>) -> Self {
        let mut p = self.clone();
        p.constraints.extend(extra);
        p
    }

    /// How many tasks the request starts: one per named instance, else `count`.
    pub fn count(&self, count: i32) -> i32 {
        if self.instances.is_empty() {
            count
        } else {
            self.instances.len() as i32
        }
    }

    /// The node for the `i`th task; the chosen node is charged in `nodes`.
    pub fn place(
        &self,
        nodes: &mut [NodeSnapshot],
        demand: &Demand,
        i: usize,
    ) -> Result<String, Rejection> {
        if let Some(want) = self.instances.get(i) {
            let id = arn::last_segment(want);
            let Some(pos) = nodes.iter().position(|n| &*n.id == id || *n.name == **want) else {
                return Err(Rejection {
                    reason: "MISSING",
                    detail: format!("no container instance {want}"),
                });
            };
            let req = PlacementRequest {
                demand,
                strategies: &[],
                constraints: &self.constraints,
                seed: 0,
            };
            return scheduler::place(&mut nodes[pos..=pos], &req);
        }
        if self.strategies.is_empty() && self.constraints.is_empty() {
            return scheduler::place_one(nodes, demand);
        }
        let req = PlacementRequest {
            demand,
            strategies: &self.strategies,
            constraints: &self.constraints,
            seed: crate::time::now_millis() as u64,
        };
        scheduler::place(nodes, &req)
    }
}
