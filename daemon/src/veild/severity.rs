//! How grave an audit line is: one scale for both sinks, syslog and the
//! journal (which wants syslog(3)'s number).

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Notice,
    Warning,
    Error,
}

impl Severity {
    /// syslog(3)'s priority.
    pub fn priority(self) -> u8 {
        match self {
            Severity::Info => 6,
            Severity::Notice => 5,
            Severity::Warning => 4,
            Severity::Error => 3,
        }
    }
}
