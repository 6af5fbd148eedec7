# lme4 reference fits with prior weights and an offset (mixedfx tests/test_weights_offset.py).
# Usage: Rscript tests/data/make_weights_offset.R tests/data
suppressMessages({library(lme4); library(jsonlite)})
out <- commandArgs(trailingOnly = TRUE)[1]
d <- as.data.frame(sleepstudy)
d$Subject <- factor(as.character(d$Subject), levels = levels(sleepstudy$Subject))
d$w <- 1 + (d$Days %% 3) / 2          # prior weights 1, 1.5, 2
d$o <- 0.5 * d$Days + 3               # a known offset
write.csv(d, file.path(out, "weights_offset.csv"), row.names = FALSE)
fits <- list(
  list(id = "weights_reml", formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE, weights = TRUE, offset = FALSE),
  list(id = "weights_ml", formula = "Reaction ~ Days + (Days | Subject)", REML = FALSE, weights = TRUE, offset = FALSE),
  list(id = "offset_reml", formula = "Reaction ~ Days + (1 | Subject)", REML = TRUE, weights = FALSE, offset = TRUE),
  list(id = "weights_offset_ml", formula = "Reaction ~ Days + (Days | Subject)", REML = FALSE, weights = TRUE, offset = TRUE)
)
res <- lapply(fits, function(f) {
  args <- list(formula = as.formula(f$formula), data = d, REML = f$REML)
  if (f$weights) args$weights <- d$w
  if (f$offset) args$offset <- d$o
  m <- do.call(lmer, args)
  list(id = f$id, formula = f$formula, REML = f$REML, weights = if (f$weights) "w" else NULL,
       offset = if (f$offset) "o" else NULL,
       objective = if (f$REML) unname(REMLcrit(m)) else -2 * as.numeric(logLik(m)),
       theta = I(unname(getME(m, "theta"))), sigma = sigma(m),
       fixef = I(unname(fixef(m))), std_error = I(unname(sqrt(diag(as.matrix(vcov(m)))))),
       fitted_head = I(unname(head(fitted(m), 5))), residuals_head = I(unname(head(residuals(m), 5))))
})
write_json(list(lme4_version = as.character(packageVersion("lme4")), fits = res),
           file.path(out, "weights_offset.json"), auto_unbox = TRUE, pretty = TRUE, digits = NA)
