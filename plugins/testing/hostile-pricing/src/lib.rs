//! A misbehaving pricing plugin.
//!
//! **It exists only for kubeop's tests. Never deploy it.** It prices nothing properly; what it
//! does depends on the tenant's tier (`rates.tier`), which a test sets through the rates API:
//!
//! | tier      | behaviour                                              |
//! |-----------|--------------------------------------------------------|
//! | `loop`    | spins forever                                          |
//! | `refuse`  | returns an error                                       |
//! | `garbage` | returns a line whose amount is not a number            |
//! | otherwise | one line with amount 0                                 |

wit_bindgen::generate!({
    world: "pricing",
    path: "../../../wit",
});

use core::hint::black_box;

struct HostilePricing;

impl Guest for HostilePricing {
    fn price(request: PricingRequest) -> Result<Vec<InvoiceLine>, String> {
        let line = |amount: &str| InvoiceLine {
            description: "Everything".into(),
            quantity: "1".into(),
            unit: "month".into(),
            unit_price: amount.into(),
            amount: amount.into(),
        };
        match request.rates.tier.as_deref() {
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            Some("refuse") => Err("this tenant's tier cannot be priced".into()),
            Some("garbage") => Ok(vec![line("a lot")]),
            _ => Ok(vec![line("0")]),
        }
    }
}

export!(HostilePricing);
