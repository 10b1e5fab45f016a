//! QR codes of enrolment URIs, drawn by the gateway (no third-party image service ever sees the
//! secret): SVG for pages, Unicode half blocks for the terminal.

use qrcode::QrCode;
use qrcode::render::{svg, unicode};

#[derive(Debug, thiserror::Error)]
#[error("the text does not fit in a QR code")]
pub struct QrError;

/// An `<svg>` element (no XML declaration, so it can sit inside HTML).
pub fn svg(text: &str) -> Result<String, QrError> {
    let code = QrCode::new(text.as_bytes()).map_err(|_| QrError)?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    let start = image.find("<svg").ok_or(QrError)?;
    Ok(image[start..].to_owned())
}

/// The code in Unicode half blocks, light modules printed as blocks so that it scans on a dark
/// terminal.
pub fn terminal(text: &str) -> Result<String, QrError> {
    let code = QrCode::new(text.as_bytes()).map_err(|_| QrError)?;
    Ok(code
        .render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_otpauth_uri_becomes_an_svg_element() {
        let uri = "otpauth://totp/openpsm:alice?secret=JBSWY3DPEHPK3PXP&issuer=openpsm";
        let image = svg(uri).unwrap();
        assert!(image.starts_with("<svg"), "{image}");
        assert!(image.trim_end().ends_with("</svg>"));
        assert!(
            !image.contains("JBSWY3DP"),
            "the SVG draws the text, it does not carry it"
        );
        assert!(terminal(uri).unwrap().lines().count() > 10);
    }

    #[test]
    fn too_much_text_is_an_error() {
        assert!(svg(&"x".repeat(8000)).is_err());
    }
}
