//! Black-box tests: a real manager over HTTP, each test on SQLite and on PostgreSQL.

mod helpers;

mod admission;
mod apps;
mod auth_matrix;
mod bad_input;
mod billing;
mod cronjobs;
mod interpreted;
mod kube;
mod languages;
mod openapi;
mod operator;
mod platform;
mod platform_kube;
mod plugins;
mod projects;
mod security;
mod service;
mod tenants;
