# R reference for mixedfx's compare_controls (tests/test_compare.py): a balanced classroom design
# simulated here with set.seed, fitted three ways -- lm ignoring classrooms, lm with classroom
# indicators (nuisance regression), lmer with lmerTest's Satterthwaite df.
# Run from the repository root:  Rscript tests/reference/make_classroom_reference.R tests/reference
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args)) args[1] else "tests/reference"
set.seed(20261124)
G <- 12; m <- 10
classroom <- factor(sprintf("c%02d", rep(seq_len(G), each = m)))
posters <- rep(rep(c(0, 1), length.out = G), each = m)          # between classrooms
quiet <- rep(rep(c(0, 1), length.out = m), times = G)            # within, balanced
age <- round(rnorm(G * m, 10, 1), 2)                             # within and between
b <- rnorm(G, 0, 4)
score <- round(70 + 1.5 * quiet + 0.5 * age + b[as.integer(classroom)] + rnorm(G * m, 0, 10), 3)
d <- data.frame(score, posters, quiet, age, classroom)
write.csv(d, file.path(out, "data", "classroom.csv"), row.names = FALSE)
d <- read.csv(file.path(out, "data", "classroom.csv"))
d$classroom <- factor(d$classroom)
tab <- function(ct) list(names = rownames(ct), estimate = unname(ct[, 1]), std_error = unname(ct[, 2]),
                         df = if (ncol(ct) == 5) unname(ct[, 3]) else NULL,
                         p_value = unname(ct[, ncol(ct)]))
res <- list(versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                            lmerTest = as.character(packageVersion("lmerTest"))))
for (f in c("score ~ posters + quiet", "score ~ posters + quiet + age")) {
  key <- if (grepl("age", f)) "with_age" else "balanced"
  o <- lm(as.formula(f), d)
  nu <- lm(as.formula(sub("~", "~ classroom +", f)), d)
  mm <- lmer(as.formula(paste(f, "+ (1 | classroom)")), d)
  res[[key]] <- list(
    formula = paste(f, "+ (1 | classroom)"),
    ols = c(tab(coef(summary(o))), list(df_resid = o$df.residual)),
    nuisance = c(tab(coef(summary(nu))), list(df_resid = nu$df.residual,
                 not_estimable = names(which(is.na(coef(nu)))))),
    mixed = tab(coef(summary(mm))))
}
writeLines(toJSON(res, digits = NA, auto_unbox = FALSE, pretty = TRUE), file.path(out, "classroom.json"))
