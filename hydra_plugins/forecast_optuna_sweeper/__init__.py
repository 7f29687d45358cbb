"""The Hydra sweeper `hydra/sweeper=optuna` on current Optuna releases (4 and later).

The search space keeps hydra-optuna-sweeper's override grammar (`choice`, `range`, `interval`,
`tag(log, ...)`, `int(...)`); samplers and pruners are config groups under `hydra/sweeper`;
a study lives in any SQLAlchemy storage, so workers on several machines can share it. Hydra
imports every public module of `hydra_plugins.*` when it starts: this package's public modules
import no Optuna (the sweep itself is in `_impl`)."""
